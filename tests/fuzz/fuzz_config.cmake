# The YAML config parsers (runtime/config), included by tests/fuzz/CMakeLists.txt.
set(EVS_CONFIG_DIR ${PROJECT_SOURCE_DIR}/runtime/config)
evs_add_fuzzer(config LIBS evs_config
  FUZZ_SOURCES ${EVS_CONFIG_DIR}/ytree.c ${EVS_CONFIG_DIR}/parse_util.c ${EVS_CONFIG_DIR}/host.c
               ${EVS_CONFIG_DIR}/nango.c ${EVS_CONFIG_DIR}/providers.c ${EVS_CONFIG_DIR}/interpolate.c
               ${EVS_CONFIG_DIR}/paginate_fields.c ${EVS_CONFIG_DIR}/oauth_clients.c
               ${EVS_CONFIG_DIR}/webhooks.c
  FUZZ_LIBS evs_common PkgConfig::YAML PkgConfig::SODIUM PkgConfig::JSONC
  INCLUDES ${EVS_CONFIG_DIR} ${PROJECT_SOURCE_DIR}/runtime/common)
