"""A user's telnet session for capture_real.sh: log in, run a few commands, log out.

No packaged client scripts a login non-interactively; telnetlib (Python 3.11's, deprecated)
answers the prompts as a person would. A command may leave a root shell (`# ` prompt): each
`exit` leaves one shell, and the session ends when the login shell does.
"""

import re
import sys
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import telnetlib

host, user, password = sys.argv[1:4]
commands = sys.argv[4:]
with telnetlib.Telnet(host, 23, timeout=10) as t:
    t.read_until(b"login: ")
    t.write(user.encode() + b"\n")
    t.read_until(b"Password: ")
    t.write(password.encode() + b"\n")
    prompt = [re.compile(rb"[$#] $")]
    t.expect(prompt)
    for command in commands:
        time.sleep(0.5)
        t.write(command.encode() + b"\n")
        t.expect(prompt)
    t.write(b"exit\n")
    t.read_all()
