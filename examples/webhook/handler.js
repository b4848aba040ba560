// A Lambda function URL handler (payload format 2.0): runs unchanged on AWS Lambda and on
// fnbox's /fn/<name> URL. Greets ?name= and echoes what it was sent.
exports.handler = async (event, context) => {
  const http = event.requestContext.http;
  let body = event.body ?? "";
  if (event.isBase64Encoded) {
    body = Buffer.from(body, "base64").toString("utf8");
  }
  const params = event.queryStringParameters ?? {};
  const headers = event.headers ?? {};
  const reply = {
    method: http.method,
    path: event.rawPath,
    query: params,
    greeting: `Hello, ${params.name ?? "world"}!`,
    received: body,
    contentType: headers["content-type"] ?? "",
  };
  console.log(`${http.method} ${event.rawPath}`);
  return {
    statusCode: http.method === "POST" ? 201 : 200,
    headers: { "content-type": "application/json", "x-handled-by": "webhook" },
    body: JSON.stringify(reply),
  };
};
