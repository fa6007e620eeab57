# cmake -DBUILD_DIR=<evscript build> -DWORK=<scratch dir> -DSRC=<outoftree dir>
#       -DCC=<compiler> -DNM=<nm> -DGENERATOR=<cmake generator> [-DSIGN=ON]
#       -P outoftree.cmake
# Installs the build into WORK/prefix, then builds a plugin against the
# installed SDK twice: with find_package(evscript) + evscript_add_plugin()
# (signed with the installed `evscript` when SIGN is on), and with plain
# `cc -shared -fPIC $(pkg-config --cflags evscript-sdk)` - the issue's
# minimal example. Each plugin must export exactly on_event and
# evs_plugin_info.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " c "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${c}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

function(check_exports file)
  run(${CMAKE_COMMAND} -DNM=${NM} -DFILE=${file} -DEXPECT=evs_plugin_info,on_event
      -P ${CMAKE_CURRENT_LIST_DIR}/check_exports.cmake)
endfunction()

set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
if(NOT EXISTS ${prefix}/include/evscript/sdk.h)
  message(FATAL_ERROR "the install has no include/evscript/sdk.h")
endif()

# 1. CMake: find_package(evscript) and evscript_add_plugin()
set(cfg -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${CC})
if(SIGN)
  set(evscript ${prefix}/bin/evscript)
  if(NOT EXISTS ${evscript})
    message(FATAL_ERROR "the install has no bin/evscript")
  endif()
  run(${evscript} keygen -p ${WORK}/dev.pub -s ${WORK}/dev.key)
  list(APPEND cfg -DSIGN_KEY=${WORK}/dev.key)
endif()
run(${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/build -G ${GENERATOR} ${cfg})
run(${CMAKE_COMMAND} --build ${WORK}/build)
if(NOT EXISTS ${WORK}/build/hello.so)
  message(FATAL_ERROR "evscript_add_plugin() made no hello.so")
endif()
check_exports(${WORK}/build/hello.so)
if(SIGN)
  if(NOT EXISTS ${WORK}/build/hello.so.minisig)
    message(FATAL_ERROR "evscript_add_plugin(SIGN_KEY) made no hello.so.minisig")
  endif()
  run(${evscript} verify -p ${WORK}/dev.pub -m ${WORK}/build/hello.so)
  file(STRINGS ${WORK}/build/hello.so.minisig tc REGEX "^trusted comment: ")
  if(NOT tc MATCHES "plugin:hello version:1\\.0\\.0 abi:[0-9]+")
    message(FATAL_ERROR "unexpected trusted comment: ${tc}")
  endif()
  message(STATUS "signed out of tree: ${tc}")
  return()
endif()

# 2. pkg-config, exactly as the README tells a plugin author
file(GLOB_RECURSE pcs ${prefix}/*/evscript-sdk.pc)
list(LENGTH pcs n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one evscript-sdk.pc under ${prefix}, found [${pcs}]")
endif()
get_filename_component(pcdir ${pcs} DIRECTORY)
run(${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pcdir}
    pkg-config --variable=plugindir evscript-sdk)
string(STRIP "${run_out}" plugindir)
string(FIND "${plugindir}" "${prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "plugindir '${plugindir}' is not under the install prefix ${prefix}")
endif()
run(${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pcdir} sh -c
    "${CC} -shared -fPIC $(pkg-config --cflags evscript-sdk) ${SRC}/hello_min.c -o ${WORK}/hello_min.so $(pkg-config --libs evscript-sdk)")
check_exports(${WORK}/hello_min.so)
message(STATUS "built out of tree with CMake and with pkg-config against ${prefix}")
