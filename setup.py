"""pip metadata for installing ivlm_core/ivlm_ros without colcon (e.g. `pip install .`).

The ROS 2 build (messages, launch files, node executables) is CMakeLists.txt; on machines
without a ROS distro `scripts/setup.sh` runs that same CMake build into the venv.
"""

from pathlib import Path

from setuptools import find_packages, setup


def _requirements() -> list[str]:
    lines = Path(__file__).with_name("requirements").joinpath("python.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


setup(
    name="ivlm_ros",
    version="0.1.0",
    description="InteractVLM as a ROS 2 perception node: 3D human and object contact from one image",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["ivlm_core", "ivlm_core.*", "ivlm_ros", "ivlm_ros.*"]),
    package_data={"ivlm_core": ["objects/*.yaml", "backends/keypoint/*.yaml"]},
    install_requires=_requirements(),
    entry_points={"console_scripts": ["ivlm-contact = ivlm_core.cli:main"]},
)
