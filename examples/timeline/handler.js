// Groups timestamped events by day (lodash) and formats them in UTC (dayjs).
// Its dependencies (package.json next to this file) are installed into the function's image
// when it is created: lodash and dayjs are not part of Node.js.
const _ = require("lodash");
const dayjs = require("dayjs");
const utc = require("dayjs/plugin/utc");

dayjs.extend(utc);

exports.handler = async (event, context) => {
  const events = event.events ?? [];
  if (!Array.isArray(events)) throw new Error("`events` must be a list of {name, at}");
  const parsed = events.map((e) => {
    const at = dayjs.utc(e.at);
    if (typeof e.at !== "string" || !at.isValid()) throw new Error(`not a date: ${JSON.stringify(e.at)}`);
    return { name: String(e.name ?? "event"), at };
  });
  const sorted = _.sortBy(parsed, (e) => e.at.valueOf());
  const days = _.mapValues(
    _.groupBy(sorted, (e) => e.at.format("YYYY-MM-DD")),
    (list) => list.map((e) => `${e.at.format("HH:mm")} ${e.name}`),
  );
  console.log(`grouped ${sorted.length} events into ${_.size(days)} days`);
  const first = _.first(sorted), last = _.last(sorted);
  return {
    days,
    first: first ? first.at.format("ddd, D MMM YYYY HH:mm") : null,
    last: last ? last.at.format("ddd, D MMM YYYY HH:mm") : null,
    span_hours: first ? last.at.diff(first.at, "hour") : 0,
  };
};
