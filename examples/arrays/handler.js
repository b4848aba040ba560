exports.handler = async (event, context) => {
  const { array = [], operation = "sum" } = event;
  if (!Array.isArray(array) || array.some((x) => typeof x !== "number")) {
    throw new TypeError("array must be a list of numbers");
  }
  if (["average", "max", "min"].includes(operation) && array.length === 0) {
    throw new Error(`cannot take the ${operation} of an empty array`);
  }
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  switch (operation) {
    case "sum":
      return sum(array);
    case "average":
      return sum(array) / array.length;
    case "max":
      return Math.max(...array);
    case "min":
      return Math.min(...array);
    case "sort":
      return [...array].sort((a, b) => a - b);
    case "reverse":
      return [...array].reverse();
    default:
      throw new Error(`Unknown operation: ${operation} (use sum, average, max, min, sort or reverse)`);
  }
};
