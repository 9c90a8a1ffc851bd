# SPDX-License-Identifier: MIT
# Included by tests/CMakeLists.txt: checks of the manual pages, the unit and
# the packages, and the system test that boots a Debian root with systemd.
set(CBM365_SYSTEM_TEST_DIR ${CMAKE_CURRENT_LIST_DIR})

# Every setting the loader accepts has an entry in cbm365-watchd.conf(5).
add_executable(test_man_pages ${CBM365_SYSTEM_TEST_DIR}/test_man_pages.c)
target_link_libraries(test_man_pages PRIVATE cbm365 PkgConfig::CMOCKA)
target_compile_definitions(test_man_pages PRIVATE
  CONF_MAN_PAGE="${PROJECT_SOURCE_DIR}/docs/cbm365-watchd.conf.5")
add_test(NAME docs/config-keys COMMAND test_man_pages)

# The pages render without warnings; --help and OPTIONS of the (8) page match.
add_test(NAME docs/options
  COMMAND ${CBM365_SYSTEM_TEST_DIR}/check-man-pages.sh $<TARGET_FILE:cbm365-watchd> ${PROJECT_SOURCE_DIR}/docs)
set_tests_properties(docs/config-keys docs/options PROPERTIES LABELS docs TIMEOUT 60)

# The unit stays hardened: exposure at most 1.5 of 10, and the installed unit verifies.
add_test(NAME service/exposure
  COMMAND ${CBM365_SYSTEM_TEST_DIR}/check-unit.sh exposure ${PROJECT_SOURCE_DIR}/units/cbm365-watchd.service 1.5)
add_test(NAME service/verify
  COMMAND ${CBM365_SYSTEM_TEST_DIR}/check-unit.sh verify ${CMAKE_BINARY_DIR})
set_tests_properties(service/exposure service/verify PROPERTIES LABELS service TIMEOUT 120)

# The packages build (lintian clean for the .deb). The system test installs this .deb.
set(CBM365_PACKAGE_DIR ${CMAKE_BINARY_DIR}/packages)
add_test(NAME packaging/deb
  COMMAND ${PROJECT_SOURCE_DIR}/packaging/build-deb.sh ${CBM365_PACKAGE_DIR})
# Each may run apt-get for missing tools, and dpkg allows one apt-get at a time.
set_tests_properties(packaging/deb PROPERTIES LABELS "packaging;system" TIMEOUT 900 FIXTURES_SETUP cbm365_deb
  RESOURCE_LOCK cbm365_apt)
add_test(NAME packaging/rpm
  COMMAND ${PROJECT_SOURCE_DIR}/packaging/build-rpm.sh ${CBM365_PACKAGE_DIR})
set_tests_properties(packaging/rpm PROPERTIES LABELS packaging TIMEOUT 900 RESOURCE_LOCK cbm365_apt)

# Boots a Debian 12 root under systemd-nspawn with the .deb installed and
# checks the service there. Exit status 77 means the machine cannot run it.
add_test(NAME system/boot
  COMMAND ${CBM365_SYSTEM_TEST_DIR}/run-system-test.sh ${CBM365_PACKAGE_DIR} ${CMAKE_BINARY_DIR}/system-test)
set_tests_properties(system/boot PROPERTIES LABELS system TIMEOUT 1200 SKIP_RETURN_CODE 77
  FIXTURES_REQUIRED cbm365_deb RESOURCE_LOCK cbm365_apt RUN_SERIAL TRUE)
