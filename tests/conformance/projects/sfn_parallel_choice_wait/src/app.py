def lambda_handler(event, context):
    order = event["order"]
    if event["check"] == "stock":
        return {"ok": order["quantity"] <= 5}
    return {"ok": order["amount"] < 1000}
