# Installs Tessera into a scratch prefix, then configures, builds and runs
# examples/cmake_project against it with find_package(Tessera).
set(prefix ${BUILD_DIR}/install_check/prefix)
set(app_build ${BUILD_DIR}/install_check/app)
file(REMOVE_RECURSE ${BUILD_DIR}/install_check)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/cmake_project -B ${app_build} -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${app_build})
run(${app_build}/tessera_example)
if(NOT LAST_OUTPUT MATCHES "sum of squares = 30")
  message(FATAL_ERROR "unexpected output from the example:\n${LAST_OUTPUT}")
endif()
message(STATUS "installed package works:\n${LAST_OUTPUT}")
