exports.handler = async (event, context) => {
  const { data = {}, operation = "keys", key } = event;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new TypeError("data must be a JSON object");
  }
  switch (operation) {
    case "keys":
      return Object.keys(data);
    case "values":
      return Object.values(data);
    case "items":
      return Object.entries(data);
    case "count":
      return Object.keys(data).length;
    case "get":
      if (!(key in data)) throw new Error(`no key '${key}' in data`);
      return data[key];
    default:
      throw new Error(`Unknown operation: ${operation} (use keys, values, items, count or get)`);
  }
};
