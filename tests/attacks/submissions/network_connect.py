"""Attack: reach the network: TCP connect to 127.0.0.1 (where the test runs a listener, the port
is given in the file name of nothing: it tries a range), a UDP datagram, an abstract-namespace
Unix socket, and DNS.

Must get: losses.softmax ERROR whose message lists only refusals ("blocked"), 0 points; the
test's listener receives no connection.
"""

import socket

PORTS = range(47100, 47140)


def softmax(acts, dim=-1):
    results = []
    for port in PORTS:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"imgclass-attack-network")
                results.append(f"CONNECTED {port}")
        except OSError as e:
            results.append(type(e).__name__)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"imgclass-attack-network", ("127.0.0.1", 47123))
        results.append("UDP SENT")
    except OSError as e:
        results.append(type(e).__name__)
    try:
        socket.getaddrinfo("example.com", 80)
        results.append("DNS RESOLVED")
    except OSError as e:
        results.append(type(e).__name__)
    reached = [r for r in results if r.isupper() or "SENT" in r or "CONNECTED" in r]
    if reached:
        raise RuntimeError("REACHED " + ", ".join(reached))
    raise RuntimeError(f"blocked: {', '.join(sorted(set(results)))}")
