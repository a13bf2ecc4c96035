"""Imported by stackcrate's launcher of neutron's OVN maintenance worker, before neutron: mends a race in
python-ovs's IDL (seen with ovs 3.5 and 3.7, neutron 27 and 28).

neutron asks for its maintenance lock (Idl.set_lock) from its own thread while ovsdbapp's thread reads the
connection. The IDL sends the "lock" request and only then records the request's id; when the reply is read in
between, its id matches nothing and it is dropped. The IDL then neither holds the lock nor hears that another
client does: every maintenance task fails, about 50 tracebacks a minute ("configured to require a database lock
but didn't get it yet"), until the worker restarts. Measured outside neutron on these machines (the integration
test's ovs_lock_requests.py): 2 to 12 lock requests in 100 to 200 lost, none with this fix. Here the id is
recorded before the request goes out.

Applied only to an IDL that has the private method this replaces, as that ovs version has it; any other ovs is
left as it is."""

import ovs.db.idl
import ovs.jsonrpc

_METHOD = "_Idl__send_lock_request"  # Idl.__send_lock_request, as Python names it inside the class


def _send_lock_request(self):
    self._Idl__update_has_lock(False)
    self._lock_request_id = None
    if not self._session.is_connected():
        return  # sent on connection (Idl.run), as before
    request = ovs.jsonrpc.Message.create_request("lock", [self.lock_name])
    self._lock_request_id = request.id  # before the reply can be read
    self._session.send(request)


if all(hasattr(ovs.db.idl.Idl, name) for name in (_METHOD, "_Idl__update_has_lock")):
    setattr(ovs.db.idl.Idl, _METHOD, _send_lock_request)
