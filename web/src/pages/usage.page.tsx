import { useQuery } from "@connectrpc/connect-query";
import { AccountService } from "../../../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { ProblemView } from "../components/problem.tsx";
import { UsageChart, usageByDay } from "../components/usage-chart.tsx";
import { problemOf } from "../errors.ts";
import { credits, dateOf, day } from "../format.ts";

export function UsagePage() {
  const usage = useQuery(AccountService.method.listUsage, {});
  const days = usage.data ? usageByDay(usage.data.rows, dateOf(usage.data.cycleStartedAt)) : [];
  const used = days.filter((entry) => entry.calls > 0);
  return (
    <section aria-labelledby="usage-title">
      <h1 id="usage-title">Usage</h1>
      {usage.error && <ProblemView problem={problemOf(usage.error)} onRetry={() => void usage.refetch()} />}
      {usage.data && (
        <>
          <p>
            This cycle: {day(usage.data.cycleStartedAt)} – {day(usage.data.cycleEndsAt)} ·{" "}
            <strong data-testid="cycle-calls">{usage.data.cycleCalls.toLocaleString()}</strong>
            {usage.data.monthlyCallsMax > 0n ? ` of ${usage.data.monthlyCallsMax.toLocaleString()} calls` : " calls"}
          </p>
          {used.length === 0 ? <p className="muted">Nothing used yet this cycle.</p> : <UsageChart days={days} />}
          <div className="table-scroll">
            <table>
              <caption className="visually-hidden">Usage per day</caption>
              <thead>
                <tr>
                  <th scope="col">Day (UTC)</th>
                  <th scope="col">Calls</th>
                  <th scope="col">Credits</th>
                </tr>
              </thead>
              <tbody>
                {used.map((entry) => (
                  <tr key={entry.date}>
                    <td>{entry.date}</td>
                    <td>{entry.calls}</td>
                    <td>{credits(entry.millicredits)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
