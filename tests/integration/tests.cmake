# SPDX-License-Identifier: MIT
# Integration tests: the cbm365-watchd binary against the mock API and a real
# systemd-journald. Included from tests/CMakeLists.txt.

set(CBM365_PYTHON "/usr/bin/python3" CACHE FILEPATH "Python 3 that runs the mock API and the integration tests")
set(_integration_dir ${CMAKE_CURRENT_LIST_DIR})
set(_journald_pid_file ${CMAKE_CURRENT_BINARY_DIR}/integration-journald.pid)

# A journald for every integration test: started once unless one already
# listens, stopped after the last test only if it was started here.
add_test(NAME integration/journald-start
  COMMAND ${CBM365_PYTHON} ${_integration_dir}/journald.py start --pid-file ${_journald_pid_file})
add_test(NAME integration/journald-stop
  COMMAND ${CBM365_PYTHON} ${_integration_dir}/journald.py stop --pid-file ${_journald_pid_file})
set_tests_properties(integration/journald-start PROPERTIES
  FIXTURES_SETUP journald LABELS integration TIMEOUT 30)
set_tests_properties(integration/journald-stop PROPERTIES
  FIXTURES_CLEANUP journald LABELS integration TIMEOUT 30)

# name | test file and unittest selection | timeout in seconds
set(_integration_tests
  "check-config|test_check_config.py|60"
  "once|test_once.py|120"
  "failures|test_failures.py|120"
  "daemon-reload|test_daemon.py ReloadTest|150"
  "daemon-outage|test_daemon.py OutageTest|150"
  "daemon-state|test_daemon.py StateTest|150"
  "scale-once|test_scale.py ThrottleTest TokenBackoffTest ConnectionsTest InconsistentPagesTest MassChangeTest|120"
  "scale-backoff|test_scale.py FailureIsolationTest|120"
  "scale-signals|test_scale.py ReloadUnderLoadTest StopUnderLoadTest|120")

foreach(spec IN LISTS _integration_tests)
  string(REPLACE "|" ";" spec "${spec}")
  list(GET spec 0 name)
  list(GET spec 1 command)
  list(GET spec 2 timeout)
  separate_arguments(command UNIX_COMMAND "${command}")
  list(GET command 0 script)
  list(REMOVE_AT command 0)
  add_test(NAME integration/${name}
    COMMAND ${CBM365_PYTHON} ${_integration_dir}/${script} ${command}
    WORKING_DIRECTORY ${_integration_dir})
  # Each test keeps its entries apart by unique ids, so the tests can share
  # one journald and run in parallel.
  set_tests_properties(integration/${name} PROPERTIES
    LABELS integration
    TIMEOUT ${timeout}
    FIXTURES_REQUIRED journald
    ENVIRONMENT "CBM365_WATCHD=$<TARGET_FILE:cbm365-watchd>;PYTHONDONTWRITEBYTECODE=1")
endforeach()
