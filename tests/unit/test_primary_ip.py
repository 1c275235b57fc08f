"""primary_ip(): the default route's interface address, judged from the kernel's routing table (pure tables)."""

import pytest

from sbops.context import choose_primary_ip, default_route_interfaces

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def table(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


@pytest.mark.parametrize(
    "text, expected",
    [
        (table("eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0"), ["eth0"]),
        # a K3s host: cni0 and flannel.1 carry only their own networks, never the default route
        (table("cni0\t00002A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0",
               "flannel.1\t00012A0A\t00012A0A\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0",
               "ens3\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0"), ["ens3"]),
        # two default routes: the lower metric wins
        (table("wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0",
               "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0"), ["eth0", "wlan0"]),
        # a default route that is down (flags without RTF_UP) does not count
        (table("eth0\t00000000\t0100A8C0\t0002\t0\t0\t100\t00000000\t0\t0\t0"), []),
        (table("eth0\tgarbage"), []),
        ("", []),
    ],
)
def test_default_route_interfaces(text, expected):
    assert default_route_interfaces(text) == expected


@pytest.mark.parametrize(
    "routes, addresses, expected",
    [
        # psutil may list cni0 first: the default route's interface still wins
        (["ens3"], {"lo": ["127.0.0.1"], "cni0": ["10.42.0.1"], "flannel.1": ["10.42.0.0"], "ens3": ["192.168.1.5"]},
         "192.168.1.5"),
        # the route's interface has no IPv4 address: the next default route
        (["eth1", "eth0"], {"eth1": [], "eth0": ["10.0.0.7"]}, "10.0.0.7"),
        # no default route: skip the container network's bridges and overlays
        ([], {"cni0": ["10.42.0.1"], "flannel.1": ["10.42.0.0"], "veth1": ["169.254.0.1"], "eth0": ["172.16.0.4"]},
         "172.16.0.4"),
        ([], {"lo": ["127.0.0.1"]}, "127.0.0.1"),
        ([], {}, "127.0.0.1"),
    ],
)
def test_choose_primary_ip(routes, addresses, expected):
    assert choose_primary_ip(routes, addresses) == expected
