"""Run by a neutron venv's Python: N times, a new IDL connected to the OVSDB server at REMOTE (schema file SCHEMA)
through ovsdbapp's connection thread asks for a lock no one holds, from this thread, as neutron's OVN maintenance
worker does; prints how many never got it. With FIX_DIR, stackcrate's fix (stackcrate_ovs_lock.py, from that
folder) is imported first, as the worker's launcher does."""

import sys
import time

REMOTE, SCHEMA, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
if len(sys.argv) > 4:
    sys.path.insert(0, sys.argv[4])
    import stackcrate_ovs_lock  # noqa: F401

from ovs.db import idl as ovs_idl  # noqa: E402
from ovsdbapp.backend.ovs_idl import connection  # noqa: E402

never = 0
for i in range(N):
    helper = ovs_idl.SchemaHelper(SCHEMA)
    helper.register_all()
    idl = ovs_idl.Idl(REMOTE, helper)
    conn = connection.Connection(idl, timeout=10)
    conn.start()  # returns once the IDL has the database's contents
    time.sleep(0.05)  # neutron asks seconds after it connected (a lock asked at once is not answered at all)
    idl.set_lock(f"stackcrate_test_{i}")  # an OVSDB id: letters, digits and underscores
    deadline = time.monotonic() + 2  # answered in a millisecond when it is answered at all
    while time.monotonic() < deadline and not idl.has_lock and not idl.is_lock_contended:
        time.sleep(0.005)
    never += not idl.has_lock
    conn.stop(timeout=10)
    idl.close()
print(never)
