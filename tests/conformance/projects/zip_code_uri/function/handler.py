from helpers.text import shout


def main(event, context):
    return shout(event["word"])
