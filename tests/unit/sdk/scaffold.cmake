# cmake -DBUILD_DIR=<evscript build> -DWORK=<scratch dir> -DNM=<nm> -DGENERATOR=<generator>
#       -DPROVIDERS=<providers.yaml> -P scaffold.cmake
# `evscript new` against `cmake --install` of this build, as an author would:
# install into WORK/prefix, scaffold an event script and an action with the
# installed `evscript`, configure them against the prefix with a signing key,
# build, run their own unit tests with ctest (the SDK's fake host), verify
# the signatures the build made, check the exported symbols, and run each
# once with `evscript run` on the connection.json the scaffold wrote.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    WORKING_DIRECTORY ${WORK})
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " c "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${c}\n${out}\n${err}")
  endif()
  set(run_out "${out}${err}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK}/prefix)
set(evscript ${prefix}/bin/evscript)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${evscript} keygen -p ${WORK}/dev.pub -s ${WORK}/dev.key)

foreach(kind event action)
  if(kind STREQUAL "event")
    set(name welcome-hook)
    run(${evscript} new ${name} --event validate-connection --integration github)
    set(entry on_event)
  else()
    set(name greet)
    run(${evscript} new ${name} --action --integration github)
    set(entry run_action)
  endif()
  foreach(f ${name}.c CMakeLists.txt test_${name}.c README.md connection.json)
    if(NOT EXISTS ${WORK}/${name}/${f})
      message(FATAL_ERROR "evscript new ${name} wrote no ${f}")
    endif()
  endforeach()
  run(${CMAKE_COMMAND} -S ${WORK}/${name} -B ${WORK}/${name}/build -G ${GENERATOR}
      -DCMAKE_PREFIX_PATH=${prefix} -DEVSCRIPT_SIGN_KEY=${WORK}/dev.key)
  run(${CMAKE_COMMAND} --build ${WORK}/${name}/build)
  run(${CMAKE_COMMAND} -E chdir ${WORK}/${name}/build ctest --output-on-failure)
  if(NOT run_out MATCHES "100% tests passed, 0 tests failed out of 1")
    message(FATAL_ERROR "the scaffold's own test did not pass:\n${run_out}")
  endif()
  run(${evscript} verify -p ${WORK}/dev.pub -m ${WORK}/${name}/build/${name}.so)
  if(NOT run_out MATCHES "Trusted comment: plugin:${name} version:0\\.1\\.0 abi:[0-9]+")
    message(FATAL_ERROR "unexpected signature: ${run_out}")
  endif()
  run(${CMAKE_COMMAND} -DNM=${NM} -DFILE=${WORK}/${name}/build/${name}.so -DEXPECT=evs_plugin_info,${entry}
      -P ${CMAKE_CURRENT_LIST_DIR}/check_exports.cmake)
  # and the README's local run, on the connection.json it wrote
  if(kind STREQUAL "event")
    run(${evscript} run ${WORK}/${name}/build/${name}.so --event validate-connection
        --connection ${WORK}/${name}/connection.json --providers ${PROVIDERS})
    set(want "metadata: {} -> {\"${name}_last_event\":\"validate-connection\"}")
  else()
    run(${evscript} run ${WORK}/${name}/build/${name}.so --action --input "{\"name\":\"octo\"}"
        --connection ${WORK}/${name}/connection.json --providers ${PROVIDERS})
    set(want "output: {\"greeting\":\"hello, octo\"}")
  endif()
  string(FIND "${run_out}" "${want}" at)
  if(at LESS 0 OR NOT run_out MATCHES "result: succeeded")
    message(FATAL_ERROR "evscript run ${name}: expected '${want}' and success:\n${run_out}")
  endif()
endforeach()

# nothing is overwritten
execute_process(COMMAND ${evscript} new greet --action WORKING_DIRECTORY ${WORK}
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "already exists")
  message(FATAL_ERROR "evscript new over an existing directory: exit ${rc}: ${err}")
endif()
message(STATUS "scaffolded, built, signed and tested an event script and an action against ${prefix}")
