import type { UsageRow } from "../../../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { credits } from "../format.ts";

export interface UsageDay {
  date: string;
  calls: number;
  millicredits: number;
}

/** Rows per day, key and member, summed per day (oldest first). */
export function usageByDay(rows: readonly UsageRow[]): UsageDay[] {
  const days = new Map<string, UsageDay>();
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
    <svg className="usage-chart" viewBox={`0 0 ${width} ${HEIGHT + AXIS}`} role="img" aria-label="Credits spent per day">
      <line x1={0} y1={HEIGHT} x2={width} y2={HEIGHT} className="axis" />
      {days.map((entry, index) => {
        const height = Math.max(2, (entry.millicredits / most) * (HEIGHT - 20));
        const x = GAP + index * (BAR_WIDTH + GAP);
        return (
          <g key={entry.date}>
            <rect x={x} y={HEIGHT - height} width={BAR_WIDTH} height={height} className="bar">
              <title>{`${entry.date}: ${credits(entry.millicredits)} credits, ${entry.calls} calls`}</title>
            </rect>
            <text x={x + BAR_WIDTH / 2} y={HEIGHT - height - 4} textAnchor="middle" className="bar-label">
              {credits(entry.millicredits)}
            </text>
            <text x={x + BAR_WIDTH / 2} y={HEIGHT + 16} textAnchor="middle" className="tick">
              {entry.date.slice(5)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
