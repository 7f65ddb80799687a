"""Every way a handler can fail, chosen by the event's "fault"."""

import os
import sys
import time


class PaymentDeclined(Exception):
    pass


def lambda_handler(event, context):
    fault = event.get("fault")
    if fault == "raise":
        raise PaymentDeclined("card 4242 declined")
    if fault == "exit":
        sys.exit(3)
    if fault == "kill":
        os._exit(9)
    if fault == "hang":
        while True:
            time.sleep(0.05)
    if fault == "memory":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if fault == "big":
        return "x" * (7 * 1024 * 1024)
    return {"fault": None}
