# cmake -DCC=<compiler> -DINC=<sdk include dir> -DSRC=<file> [-DCALL=<member>]
#       -P check_compile.cmake
# Without CALL: the file must compile (-fsyntax-only, -Wall -Wextra -Werror).
# With CALL: it must fail, and the compiler must say that struct evs_host has
# no member named CALL (so it failed for that reason, not another one).
set(cmd ${CC} -std=c11 -Wall -Wextra -Werror -fsyntax-only -I${INC} ${SRC})
if(CALL)
  list(APPEND cmd -DEVS_TEST_CALL=${CALL})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env LC_ALL=C ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT CALL)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the control plugin does not compile:\n${err}")
  endif()
  message(STATUS "control compiles")
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "a plugin calling host->${CALL}() compiled")
endif()
if(NOT err MATCHES "no member named [^ a-zA-Z0-9_]*${CALL}[^a-zA-Z0-9_]")
  message(FATAL_ERROR "compiling failed, but not because ${CALL} is missing:\n${err}")
endif()
message(STATUS "refused as expected:\n${err}")
