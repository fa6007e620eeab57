# What json-c accepts and the API refuses (runtime/http/json_check.c),
# included by tests/fuzz/CMakeLists.txt.
if(TARGET evs_http)
  evs_add_fuzzer(json_check LIBS evs_http
    FUZZ_SOURCES ${PROJECT_SOURCE_DIR}/runtime/http/json_check.c
    FUZZ_LIBS PkgConfig::JSONC
    INCLUDES ${PROJECT_SOURCE_DIR}/runtime/http)
endif()
