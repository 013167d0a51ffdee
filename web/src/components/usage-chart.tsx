import type { UsageRow } from "../../../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { credits } from "../format.ts";

export interface UsageDay {
  date: string;
  calls: number;
  millicredits: number;
}

/** Days shown at most: a cycle is a month. */
const CHART_DAYS_MAX = 31;
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Rows per day, key and member, summed per day (oldest first), with the days of the cycle so far
 * that had no use as zeros (from `since`, at most CHART_DAYS_MAX days up to today, UTC).
 */
export function usageByDay(rows: readonly UsageRow[], since?: Date, today: Date = new Date()): UsageDay[] {
  const days = new Map<string, UsageDay>();
  if (since !== undefined) {
    const first = Math.max(Date.UTC(since.getUTCFullYear(), since.getUTCMonth(), since.getUTCDate()), today.getTime() - (CHART_DAYS_MAX - 1) * DAY_MS);
    for (let time = first; time <= today.getTime(); time += DAY_MS) {
      const date = new Date(time).toISOString().slice(0, 10);
      days.set(date, { date, calls: 0, millicredits: 0 });
    }
  }
  for (const row of rows) {
    const entry = days.get(row.date) ?? { date: row.date, calls: 0, millicredits: 0 };
    entry.calls += Number(row.calls);
    entry.millicredits += Number(row.capturedMillicredits);
    days.set(row.date, entry);
  }
  return [...days.values()].sort((a, b) => a.date.localeCompare(b.date));
}

const HEIGHT = 160;
const BAR_WIDTH = 28;
const GAP = 8;
const AXIS = 24;

/** Credits per day as bars (plain SVG); the table beside it carries the same figures for screen readers. */
export function UsageChart({ days }: { days: readonly UsageDay[] }) {
  const most = Math.max(1, ...days.map((entry) => entry.millicredits));
  const width = Math.max(240, days.length * (BAR_WIDTH + GAP) + GAP);
  return (
    <svg className="usage-chart" width={width} height={HEIGHT + AXIS} viewBox={`0 0 ${width} ${HEIGHT + AXIS}`} role="img" aria-label="Credits spent per day">
      <line x1={0} y1={HEIGHT} x2={width} y2={HEIGHT} className="axis" />
      {days.map((entry, index) => {
        const height = entry.millicredits === 0 ? 1 : Math.max(2, (entry.millicredits / most) * (HEIGHT - 20));
        const x = GAP + index * (BAR_WIDTH + GAP);
        return (
          <g key={entry.date}>
            <rect x={x} y={HEIGHT - height} width={BAR_WIDTH} height={height} className={entry.millicredits > 0 ? "bar" : "bar bar-empty"}>
              <title>{`${entry.date}: ${credits(entry.millicredits)} credits, ${entry.calls} calls`}</title>
            </rect>
            {entry.millicredits > 0 && (
              <text x={x + BAR_WIDTH / 2} y={HEIGHT - height - 4} textAnchor="middle" className="bar-label">
                {credits(entry.millicredits)}
              </text>
            )}
            <text x={x + BAR_WIDTH / 2} y={HEIGHT + 16} textAnchor="middle" className="tick">
              {entry.date.slice(5)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
