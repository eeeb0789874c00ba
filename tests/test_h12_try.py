import time

from emulator import CoalmineEmulator
from operator_harness import *


async def test_flow(emulator: CoalmineEmulator) -> None:
    t0 = time.monotonic()
    history = History.install(emulator)
    with scripted_prometheus() as prom:
        emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
        emulator.create_object(CANARIES, canary("podinfo"), NS)
        async with operator(emulator, test_config(prom)):
            print("started", time.monotonic() - t0)
            await wait_phase(emulator, "podinfo", "Initialized")
            print("initialized", time.monotonic() - t0)
            new_image(emulator, "podinfo", "podinfo:2")
            await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
            print("succeeded", time.monotonic() - t0)
        print("stopped", time.monotonic() - t0)
    print(history.phases("podinfo"), history.weights("podinfo"))
    print(validate_written(emulator))
    print(events_of(emulator, "podinfo"))
    print(prom.counts)
