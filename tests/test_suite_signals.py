"""The suite's children get a working Ctrl-C even when the suite itself was
started with SIGINT ignored (as a shell's background job is)."""

import os
import signal
import subprocess
import sys
import textwrap
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imports the test package as the runner does, then starts a child and asks
# it what its SIGINT handler is.
RUNNER = textwrap.dedent("""
    import subprocess, sys
    import tests
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    print(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60).stdout.strip())
""")


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class SuiteChildrenSigint(unittest.TestCase):
    def test_a_child_of_a_runner_started_with_sigint_ignored_gets_keyboard_interrupt(self) -> None:
        result = subprocess.run(
            [sys.executable, "-c", RUNNER], cwd=ROOT, preexec_fn=ignore_sigint,
            capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "True", result.stderr)


if __name__ == "__main__":
    unittest.main()
