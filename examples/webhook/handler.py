import base64
import json


def handler(event, context):
    """A Lambda function URL handler (payload format 2.0): runs unchanged on AWS Lambda and
    on fnbox's /fn/<name> URL. Greets ?name= and echoes what it was sent."""
    http = event["requestContext"]["http"]
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    params = event.get("queryStringParameters") or {}
    headers = event.get("headers") or {}
    reply = {
        "method": http["method"],
        "path": event["rawPath"],
        "query": params,
        "greeting": "Hello, %s!" % params.get("name", "world"),
        "received": body,
        "contentType": headers.get("content-type", ""),
    }
    print("%s %s" % (http["method"], event["rawPath"]))
    return {
        "statusCode": 201 if http["method"] == "POST" else 200,
        "headers": {"content-type": "application/json", "x-handled-by": "webhook"},
        "body": json.dumps(reply, separators=(",", ":"), ensure_ascii=False),
    }
