# SPDX-License-Identifier: MIT
# Self-test of the Elements API mock that the integration tests run against.
# Included from tests/CMakeLists.txt, so CMAKE_CURRENT_SOURCE_DIR is tests/.
add_test(NAME mock/selftest
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/mock/test_elements_mock.py)
set_tests_properties(mock/selftest PROPERTIES LABELS "mock" TIMEOUT 180)
