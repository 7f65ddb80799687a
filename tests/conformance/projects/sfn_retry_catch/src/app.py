class PaymentDeclined(Exception):
    pass


def lambda_handler(event, context):
    if event.get("decline"):
        raise PaymentDeclined("card declined")
    return {"paid": event["amount"]}
