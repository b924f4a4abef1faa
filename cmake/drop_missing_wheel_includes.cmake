# Injected with -DCMAKE_PROJECT_INCLUDE=<this file> when building against the ROS 2 PyPI wheels.
#
# The wheels were built in a manylinux container: every exported
# <pkg>::<pkg>__rosidl_generator_py target lists that container's Python and NumPy include
# folders (/opt/python/cp3XX-.../include), which do not exist here, and CMake refuses to
# generate. After the top-level CMakeLists.txt has run (all find_package() calls done), drop
# the absolute include folders that do not exist from every imported target. Our own targets
# get the real Python/NumPy folders from rosidl_generator_py. No installed file is modified.
# Unused (and harmless) on a ROS 2 distro installed from apt.
cmake_minimum_required(VERSION 3.19)
include_guard(GLOBAL)

function(_ivlm_drop_missing_includes dir)
  get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    _ivlm_drop_missing_includes("${sub}")
  endforeach()
  get_property(targets DIRECTORY "${dir}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(includes ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT includes)
      continue()
    endif()
    set(kept "")
    foreach(inc IN LISTS includes)
      if(inc MATCHES "^\\$<" OR NOT IS_ABSOLUTE "${inc}" OR EXISTS "${inc}")
        list(APPEND kept "${inc}")
      endif()
    endforeach()
    if(NOT kept STREQUAL includes)
      message(STATUS "wheel fix: dropped missing include folders of ${target}")
      set_property(TARGET ${target} PROPERTY INTERFACE_INCLUDE_DIRECTORIES "${kept}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}"
  CALL _ivlm_drop_missing_includes "${CMAKE_SOURCE_DIR}")
