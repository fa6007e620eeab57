# The API's pure JSON body parsers (runtime/http/api_parse.c), included by
# tests/fuzz/CMakeLists.txt.
if(TARGET evs_api)
  evs_add_fuzzer(api_json LIBS evs_api
    FUZZ_SOURCES ${PROJECT_SOURCE_DIR}/runtime/http/api_parse.c
    FUZZ_LIBS evs_common PkgConfig::JSONC
    INCLUDES $<TARGET_PROPERTY:evs_api,INTERFACE_INCLUDE_DIRECTORIES>)
endif()
