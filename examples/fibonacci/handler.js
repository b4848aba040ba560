const fibonacci = (n) => (n < 2 ? n : fibonacci(n - 1) + fibonacci(n - 2));

exports.handler = async (event, context) => {
  const n = event.n ?? 10;
  if (!Number.isInteger(n) || n < 0 || n > 35) {
    throw new RangeError("n must be an integer between 0 and 35");
  }
  return fibonacci(n);
};
