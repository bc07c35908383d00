# The Python package `tessera`: the extension module tessera._C (nanobind) plus the pure-Python
# files under python/tessera. The build tree gets a runnable copy in ${CMAKE_BINARY_DIR}/python
# (PYTHONPATH for the tests); `pip install .` (scikit-build-core) installs the same files with
# libtessera next to _C.
set(_tessera_python_wanted ${TESSERA_PYTHON})
if(TESSERA_SANITIZE AND TESSERA_PYTHON STREQUAL "AUTO")
  set(_tessera_python_wanted OFF)  # a sanitized library cannot be loaded into a plain python
endif()
if(_tessera_python_wanted STREQUAL "OFF")
  return()
endif()

find_package(Python 3.9 COMPONENTS Interpreter Development.Module)
if(Python_FOUND AND NOT nanobind_DIR)
  execute_process(COMMAND ${Python_EXECUTABLE} -m nanobind --cmake_dir
                  OUTPUT_VARIABLE _nb_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_nb_dir)
    set(nanobind_DIR ${_nb_dir} CACHE PATH "nanobind's CMake package")
  endif()
endif()
if(Python_FOUND)
  find_package(nanobind CONFIG QUIET)
endif()
if(NOT Python_FOUND OR NOT nanobind_FOUND)
  if(_tessera_python_wanted STREQUAL "ON")
    message(FATAL_ERROR "TESSERA_PYTHON=ON needs Python 3.9+ (with headers) and nanobind")
  endif()
  message(STATUS "Python package: off (Python development files or nanobind not found)")
  return()
endif()
message(STATUS "Python package: on (${Python_EXECUTABLE}, nanobind ${nanobind_VERSION})")

set(TESSERA_PY_DIR ${CMAKE_BINARY_DIR}/python/tessera)
file(GLOB TESSERA_PY_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/python/src/*.cpp)
# NOMINSIZE: -O3 rather than -Os, the per-call overhead matters more than the size.
nanobind_add_module(_C NB_STATIC NOMINSIZE ${TESSERA_PY_SOURCES})
target_link_libraries(_C PRIVATE tessera)
target_include_directories(_C PRIVATE ${PROJECT_SOURCE_DIR}/python/src)
tessera_target_options(_C)
set_target_properties(_C PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${TESSERA_PY_DIR}
                                    INSTALL_RPATH "$ORIGIN")

# The pure-Python files, mirrored into the build tree on every build (cheap; keeps edits live).
add_custom_target(tessera_py_files ALL
  COMMAND ${CMAKE_COMMAND} -E copy_directory ${PROJECT_SOURCE_DIR}/python/tessera ${TESSERA_PY_DIR}
  COMMENT "Copying the tessera Python package into the build tree")
add_dependencies(_C tessera_py_files)

# Type stubs for editors, generated from the built module: a stub package tessera/_C/ with one
# .pyi per submodule (the private _nn, _optim, ... hold most classes, hence INCLUDE_PRIVATE).
# Python imports the extension module beside it; type checkers read the stubs.
nanobind_add_stub(_C_stub RECURSIVE INCLUDE_PRIVATE MODULE tessera._C OUTPUT_PATH ${TESSERA_PY_DIR}
                  OUTPUT ${TESSERA_PY_DIR}/_C/__init__.pyi PYTHON_PATH ${CMAKE_BINARY_DIR}/python
                  DEPENDS _C MARKER_FILE ${TESSERA_PY_DIR}/py.typed)

if(SKBUILD)
  install(TARGETS _C tessera LIBRARY DESTINATION tessera)
  install(DIRECTORY ${TESSERA_PY_DIR}/_C DESTINATION tessera)
  install(FILES ${TESSERA_PY_DIR}/py.typed DESTINATION tessera)
endif()
