# The executor's message framing (runtime/executor/wire.c), included by
# tests/fuzz/CMakeLists.txt.
if(TARGET evs_executor_wire)
  evs_add_fuzzer(wire LIBS evs_executor_wire
    FUZZ_SOURCES ${PROJECT_SOURCE_DIR}/runtime/executor/wire.c ${PROJECT_SOURCE_DIR}/runtime/common/status.c
    FUZZ_LIBS PkgConfig::JSONC
    INCLUDES ${PROJECT_SOURCE_DIR}/runtime/executor ${PROJECT_SOURCE_DIR}/runtime/common)
endif()
