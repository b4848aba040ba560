const MONTHS = ["January", "February", "March", "April", "May", "June", "July",
  "August", "September", "October", "November", "December"];
const pad = (n) => String(n).padStart(2, "0");

exports.handler = async (event, context) => {
  const { date = "2023-01-15T12:30:45Z", format = "iso" } = event;
  // A date without a zone is taken as UTC, as in the Python version.
  const hasZone = /(Z|[+-]\d\d:?\d\d)$/.test(String(date));
  const d = new Date(hasZone ? date : `${date}Z`);
  if (typeof date !== "string" || Number.isNaN(d.getTime())) {
    throw new Error(`not an ISO 8601 date: ${JSON.stringify(date)}`);
  }
  const ymd = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const hms = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  switch (format) {
    case "iso":
      return `${ymd}T${hms}Z`;
    case "date":
      return ymd;
    case "time":
      return hms;
    case "unix":
      return Math.floor(d.getTime() / 1000);
    case "locale": {
      const h = d.getUTCHours();
      const hour = h % 12 || 12;
      return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ${d.getUTCFullYear()} ` +
        `${hour}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${h < 12 ? "AM" : "PM"} UTC`;
    }
    default:
      throw new Error(`Unknown format: ${format} (use iso, locale, date, time or unix)`);
  }
};
