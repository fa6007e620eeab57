# cmake -DVERSION=X.Y.Z -DDEST=DIR -P fetch_nango_providers.cmake
# Gets @nangohq/providers@VERSION from the npm registry with `npm pack` and
# unpacks it into DIR (DIR/package/providers.yaml). Skipped when present.
if(EXISTS ${DEST}/package/providers.yaml)
  return()
endif()
find_program(NPM npm REQUIRED)
file(MAKE_DIRECTORY ${DEST})
execute_process(COMMAND ${NPM} pack --silent @nangohq/providers@${VERSION}
  WORKING_DIRECTORY ${DEST} RESULT_VARIABLE rc OUTPUT_VARIABLE tarball OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "npm pack @nangohq/providers@${VERSION} failed (${rc})")
endif()
file(ARCHIVE_EXTRACT INPUT ${DEST}/${tarball} DESTINATION ${DEST})
if(NOT EXISTS ${DEST}/package/providers.yaml)
  message(FATAL_ERROR "${DEST}/${tarball} has no package/providers.yaml")
endif()
