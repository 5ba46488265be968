# CTest helper: EXPECTED_TEXT=<text> cmake -P expect_error.cmake -- <command> [args...]
# Passes when the command exits 1 and writes exactly one line to stderr, "error: ..." containing the text: the
# program's own message, with no library output (OpenCV, FFmpeg) before it.
set(command)
set(seen_separator OFF)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(seen_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
    set(seen_separator ON)
  endif()
endforeach()
set(EXPECTED "$ENV{EXPECTED_TEXT}")
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(FIND "${err}" "${EXPECTED}" at)
string(REGEX MATCHALL "\n" newlines "${err}")
list(LENGTH newlines lines)
if(NOT rc EQUAL 1 OR at EQUAL -1 OR NOT lines EQUAL 1 OR NOT err MATCHES "^error: ")
  message(FATAL_ERROR "expected exit 1 and one line 'error: ...${EXPECTED}...' on stderr; got exit ${rc}, stderr:\n"
                      "${err}")
endif()
message("exit 1, stderr: ${err}")
