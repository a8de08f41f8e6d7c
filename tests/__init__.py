"""The Python test suite (run with ``python -m unittest discover -s tests -t .``)."""

import signal

# A shell starts a background job (`bash .ci/run &`) with SIGINT ignored, and
# an ignored signal stays ignored across exec: every child the tests start
# would then ignore Ctrl-C, and the tests that send it SIGINT would fail for a
# reason that has nothing to do with the code under test. A caught signal, on
# the other hand, is reset to its default by exec, so catching it here (with
# Python's own handler) gives every child the SIGINT a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
