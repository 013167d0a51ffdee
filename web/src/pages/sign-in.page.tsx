import { useState, type FormEvent } from "react";
import { createApi } from "../api.ts";
import { ProblemView } from "../components/problem.tsx";
import { problemOf, type Problem } from "../errors.ts";

/** Sign in with an API key: checked with one GetBalance call, then kept for this tab only. */
export function SignInPage({ onSignedIn }: { onSignedIn: (apiKey: string) => void }) {
  const [key, setKey] = useState("");
  const [problem, setProblem] = useState<Problem | undefined>();
  const [checking, setChecking] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const apiKey = key.trim();
    setChecking(true);
    setProblem(undefined);
    try {
      await createApi(apiKey).account.getBalance({});
      onSignedIn(apiKey);
    } catch (error) {
      setProblem(problemOf(error));
    } finally {
      setChecking(false);
    }
  };

  return (
    <section className="sign-in" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">Sign in to Cutline</h1>
      <p>
        Use an API key of your account. Team members sign in with their own key and see what their role allows. The key stays in this tab only (session
        storage) and is sent to this server alone.
      </p>
      <form onSubmit={(event) => void submit(event)}>
        <label>
          API key
          <input type="password" autoComplete="off" spellCheck={false} value={key} onChange={(event) => setKey(event.target.value)} placeholder="cl_…" required autoFocus />
        </label>
        <button type="submit" className="primary" disabled={checking || key.trim() === ""}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
      {problem && <ProblemView problem={problem.reason === "invalid_api_key" ? { ...problem, action: undefined } : problem} />}
      <p className="muted">
        Running a single node? Its key is printed by <code>npm start</code> and kept in <code>.data/api-key</code>.
      </p>
    </section>
  );
}
