"""What tests share, in one place (test modules never import each other):

- ``polling``: :func:`wait_until`, the one way to wait for something another task, process or session makes true;
- ``database``: per-test database names, message counts by state, :func:`wait_final`;
- ``engine``: a fake-carrier application, the fake carrier, the engine in this event loop
  (:func:`engine_running`) or in a thread of its own for synchronous tests (:class:`ThreadedEngine`);
- ``processes``: the engine's commands as real processes (system tests);
- ``gateway``: a loopback application gateway that records and verifies callbacks;
- ``loops``: the event loop the suite runs on (asyncio or uvloop) and the recorder of unhandled loop exceptions;
- ``windows``, ``sim``: the sliding-window load oracle and the scheduler simulator of the throttle tests.
"""
