exports.handler = async (event, context) => {
  const { operation = "add", num1 = 0, num2 = 0 } = event;
  if (typeof num1 !== "number" || typeof num2 !== "number") {
    throw new TypeError("num1 and num2 must be numbers");
  }
  switch (operation) {
    case "add":
      return num1 + num2;
    case "subtract":
      return num1 - num2;
    case "multiply":
      return num1 * num2;
    case "divide":
      if (num2 === 0) throw new Error("Division by zero");
      return num1 / num2;
    default:
      throw new Error(`Unknown operation: ${operation} (use add, subtract, multiply or divide)`);
  }
};
