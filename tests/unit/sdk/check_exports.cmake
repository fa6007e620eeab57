# cmake -DNM=<nm> -DFILE=<plugin.so> -DEXPECT=<sym,sym,...> -P check_exports.cmake
# The dynamic symbols a plugin defines must be exactly EXPECT: its entry point
# and evs_plugin_info, nothing else.
execute_process(COMMAND ${NM} -D --defined-only --format=posix ${FILE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${FILE}: ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(got)
foreach(line ${lines})
  if(line MATCHES "^([^ ]+) ")
    list(APPEND got ${CMAKE_MATCH_1})
  endif()
endforeach()
list(SORT got)
string(REPLACE "," ";" want "${EXPECT}")
list(SORT want)
if(NOT got STREQUAL want)
  message(FATAL_ERROR "${FILE} exports [${got}], expected exactly [${want}]")
endif()
message(STATUS "${FILE} exports exactly [${got}]")
