exports.handler = async (event, context) => {
  const { text = "", operation = "uppercase" } = event;
  if (typeof text !== "string") throw new TypeError("text must be a string");
  const operations = {
    reverse: (t) => [...t].reverse().join(""),
    uppercase: (t) => t.toUpperCase(),
    lowercase: (t) => t.toLowerCase(),
    length: (t) => t.length,
  };
  if (!(operation in operations)) {
    throw new Error(`Unknown operation: ${operation} (use ${Object.keys(operations).join(", ")})`);
  }
  return operations[operation](text);
};
