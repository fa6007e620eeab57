# Run at install time (install(CODE) in dist/CMakeLists.txt), so that what it
# writes has the prefix of this installation, `cmake --install --prefix P`
# included, not the one the build was configured with: evscript.yaml, the
# systemd unit and the man pages name the paths of the installation; the
# configuration's directories are made; nango.yaml and providers.yaml are
# copied. DESTDIR is honoured (CPack sets it, with CMAKE_INSTALL_PREFIX the
# package's /usr).
#
# The caller sets EVS_SRC (the source tree), EVS_BIN (dist's build directory)
# and EVS_VERSION, and the relative GNUInstallDirs directories
# EVS_{BINDIR,LIBDIR,LIBEXECDIR,DATADIR,MANDIR,DOCDIR}. As GNUInstallDirs does,
# the prefix /usr puts the configuration in /etc and the state in /var.
set(prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" prefix "${prefix}")
if(prefix STREQUAL "/usr" OR prefix STREQUAL "")
  set(EVS_CONFDIR /etc/evscript)
  set(EVS_STATEDIR /var/lib/evscript)
else()
  set(EVS_CONFDIR ${prefix}/etc/evscript)
  set(EVS_STATEDIR ${prefix}/var/lib/evscript)
endif()
set(PROJECT_VERSION ${EVS_VERSION})
set(CMAKE_INSTALL_FULL_BINDIR ${prefix}/${EVS_BINDIR})
set(CMAKE_INSTALL_FULL_LIBEXECDIR ${prefix}/${EVS_LIBEXECDIR})
set(CMAKE_INSTALL_FULL_DOCDIR ${prefix}/${EVS_DOCDIR})
set(EVS_PLUGINDIR ${prefix}/${EVS_LIBDIR}/evscript/plugins)
set(EVS_DATADIR ${prefix}/${EVS_DATADIR}/evscript)
set(dest "$ENV{DESTDIR}") # for file(MAKE_DIRECTORY); file(INSTALL) adds it itself

# Writes template IN, configured, to the installed path OUT.
function(evs_install_configured in out)
  get_filename_component(name "${out}" NAME)
  configure_file("${in}" "${EVS_BIN}/installed/${name}" @ONLY)
  get_filename_component(dir "${out}" DIRECTORY)
  file(INSTALL "${EVS_BIN}/installed/${name}" DESTINATION "${dir}") # file(INSTALL) adds DESTDIR
endfunction()

evs_install_configured("${EVS_SRC}/dist/evscript.yaml.in" "${EVS_CONFDIR}/evscript.yaml")
file(INSTALL "${EVS_SRC}/dist/nango.yaml" DESTINATION "${EVS_CONFDIR}")
file(INSTALL "${EVS_SRC}/providers/providers.yaml" DESTINATION "${EVS_DATADIR}")
file(MAKE_DIRECTORY "${dest}${EVS_CONFDIR}/keys" "${dest}${EVS_PLUGINDIR}" "${dest}${EVS_STATEDIR}")
evs_install_configured("${EVS_SRC}/dist/systemd/evscriptd.service"
  "${prefix}/lib/systemd/system/evscriptd.service")

# Man pages, gzipped as Debian has them.
find_program(gzip gzip REQUIRED)
foreach(page evscriptd.8 evscript.1)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" section ${page})
  configure_file("${EVS_SRC}/dist/man/${page}.in" "${EVS_BIN}/installed/${page}" @ONLY)
  execute_process(COMMAND ${gzip} -9nf "${EVS_BIN}/installed/${page}" COMMAND_ERROR_IS_FATAL ANY)
  file(INSTALL "${EVS_BIN}/installed/${page}.gz" DESTINATION "${prefix}/${EVS_MANDIR}/man${section}")
endforeach()
