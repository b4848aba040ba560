exports.handler = async (event, context) => {
  const name = event.name ?? "World";
  console.log(`greeting ${name}`);
  return `Hello, ${name}!`;
};
