"""Package hygiene: ivlm_core never needs ROS, and every import is declared for pip and for ROS."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROS_MODULES = {
    "rclpy", "std_msgs", "geometry_msgs", "sensor_msgs", "visualization_msgs", "diagnostic_msgs",
    "lifecycle_msgs", "builtin_interfaces", "ament_index_python", "launch", "launch_ros", "vision_msgs",
    "cv_bridge", "rosidl_runtime_py", "rcl_interfaces",
}
# import name -> pip distribution in requirements/python.txt
PIP_NAMES = {
    "cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "PyYAML", "skimage": "scikit-image",
    "numpy": "numpy", "scipy": "scipy", "torch": "torch", "trimesh": "trimesh", "anny": "anny",
    "smplx": "smplx", "mediapipe": "mediapipe", "moderngl": "moderngl", "glcontext": "glcontext",
    "transformers": "transformers", "peft": "peft", "safetensors": "safetensors", "tokenizers": "tokenizers",
    "sentencepiece": "sentencepiece", "tqdm": "tqdm", "roma": "roma",
}
# optional, imported lazily and only where present: nvdiffrast (CUDA machines), cv_bridge (a ROS 2
# distro; not on PyPI, images are converted with numpy without it), bitsandbytes (8/4-bit loading of the
# interactvlm backend on a CUDA machine; a clear error names it when missing)
OPTIONAL = {"nvdiffrast", "cv_bridge", "bitsandbytes"}


def _imports(package: str) -> dict[str, set[str]]:
    """Top-level module -> files of `package` that import it."""
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def _third_party(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    local = {"ivlm_core", "ivlm_ros"}
    return {m: f for m, f in imports.items() if m not in sys.stdlib_module_names and m not in local}


def test_ivlm_core_source_never_imports_ros():
    ros = {m: f for m, f in _imports("ivlm_core").items() if m in ROS_MODULES or m == "ivlm_ros"}
    assert not ros, f"ivlm_core must stay ROS-free, but imports {ros}"


def test_ivlm_core_imports_with_ros_unavailable():
    """Import every ivlm_core module in a process where importing any ROS module fails."""
    code = f"""
import importlib, pkgutil, sys
BLOCKED = {sorted(ROS_MODULES | {"ivlm_ros"})!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("ROS is blocked in this test: " + name)
sys.meta_path.insert(0, Block())
import ivlm_core
for m in pkgutil.walk_packages(ivlm_core.__path__, "ivlm_core."):
    if not m.name.endswith("__main__"):
        importlib.import_module(m.name)
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
print("OK", len([m for m in sys.modules if m.startswith("ivlm_core")]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")


def _requirements() -> set[str]:
    text = (REPO / "requirements" / "python.txt").read_text()
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    return {re.split(r"[=<>\s]", ln)[0].lower() for ln in lines if ln}


def _package_xml_deps() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "buildtool_depend", "test_depend")
    return {e.text.strip() for tag in tags for e in root.iter(tag)}


def test_every_third_party_import_is_declared():
    reqs, deps = _requirements(), _package_xml_deps()
    undeclared = {}
    for package in ("ivlm_core", "ivlm_ros"):
        for module, files in _third_party(_imports(package)).items():
            if module in OPTIONAL:
                continue
            if module in ROS_MODULES:
                ok = module in deps
            else:
                ok = module in PIP_NAMES and PIP_NAMES[module].lower() in reqs
            if not ok:
                undeclared[module] = sorted(files)
    assert not undeclared, (
        "declare these imports (ROS packages in package.xml, others in requirements/python.txt "
        f"and PIP_NAMES here): {undeclared}"
    )


def test_message_dependencies_are_declared_for_the_build():
    cmake = (REPO / "CMakeLists.txt").read_text()
    deps = _package_xml_deps()
    used = set()
    for msg in (REPO / "msg").glob("*.msg"):
        for line in msg.read_text().splitlines():
            field = line.split("#")[0].strip()
            if "/" in field.split(" ")[0]:
                used.add(field.split("/")[0])
            if field:
                assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not in rosidl_generate_interfaces"
    for pkg in used:
        assert f"find_package({pkg} REQUIRED)" in cmake, pkg
        assert re.search(rf"DEPENDENCIES[^)]*\b{pkg}\b", cmake), f"{pkg} missing from rosidl DEPENDENCIES"
        assert pkg in deps, f"{pkg} missing from package.xml"


def test_cmake_installs_what_ros2_launch_needs():
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert "DESTINATION lib/${PROJECT_NAME}" in cmake
    assert "foreach(share_dir launch config)" in cmake
    assert "ament_python_install_package(ivlm_core)" in cmake
