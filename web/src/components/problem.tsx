import { useEffect, useState } from "react";
import type { Problem } from "../errors.ts";
import { navigate } from "../router.ts";

/** A refusal as the person should read it: what, the server's figures, what to do next. */
export function ProblemView({ problem, onRetry }: { problem: Problem; onRetry?: () => void }) {
  const remaining = useCountdown(problem.retryAfterSeconds);
  return (
    <div className={`problem${problem.unavailable ? " problem-unavailable" : ""}`} role="alert" data-reason={problem.reason}>
      <strong className="problem-title">{problem.title}</strong>
      <span className="problem-detail">{problem.detail}</span>
      {problem.retryAfterSeconds !== undefined && (
        <span className="problem-wait">{remaining > 0 ? `You can retry in ${remaining} s.` : "You can retry now."}</span>
      )}
      {(problem.action || onRetry) && (
        <span className="problem-actions">
          {problem.action && (
            <a
              href={problem.action.href}
              onClick={(event) => {
                event.preventDefault();
                navigate(problem.action!.href);
              }}
            >
              {problem.action.label}
            </a>
          )}
          {onRetry && (
            <button type="button" className="link" disabled={remaining > 0} onClick={onRetry}>
              Retry
            </button>
          )}
        </span>
      )}
    </div>
  );
}

/** A feature whose service this gateway does not serve or has not configured. */
export function Unavailable({ feature, detail }: { feature: string; detail?: string }) {
  return (
    <div className="problem problem-unavailable" role="status" data-reason="unavailable">
      <strong className="problem-title">{feature} is not available on this server</strong>
      <span className="problem-detail">{detail ?? "The operator has not enabled it. Everything else works as usual."}</span>
    </div>
  );
}

function useCountdown(seconds: number | undefined): number {
  const [left, setLeft] = useState(seconds ?? 0);
  useEffect(() => {
    setLeft(seconds ?? 0);
    if (!seconds) return;
    const started = Date.now();
    const timer = setInterval(() => {
      const value = Math.max(0, seconds - Math.floor((Date.now() - started) / 1000));
      setLeft(value);
      if (value === 0) clearInterval(timer);
    }, 1000);
    return () => clearInterval(timer);
  }, [seconds]);
  return left;
}
