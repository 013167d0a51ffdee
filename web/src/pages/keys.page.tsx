import { useState, type FormEvent } from "react";
import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { KeyService, type ApiKey } from "../../../services/common/gen/cutline/gateway/v1/key_service_pb.ts";
import type { Api } from "../api.ts";
import { ProblemView } from "../components/problem.tsx";
import { problemOf, type Problem } from "../errors.ts";
import { day } from "../format.ts";

/**
 * The account's keys as the caller's role allows: a member sees and manages their own, owners and
 * admins everyone's (the server decides; a refusal says which role it takes).
 */
export function KeysPage({ api, apiKey, onSignOut }: { api: Api; apiKey: string; onSignOut: () => void }) {
  const keys = useQuery(KeyService.method.listKeys, {});
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const [memberId, setMemberId] = useState("");
  const [created, setCreated] = useState<{ key: ApiKey; secret: string } | undefined>();
  const [problem, setProblem] = useState<Problem | undefined>();
  const [confirming, setConfirming] = useState<string | undefined>();
  const [copied, setCopied] = useState(false);

  const mine = keys.data?.keys.find((key) => key.keyPrefix !== "" && apiKey.startsWith(key.keyPrefix));
  const members = new Set(keys.data?.keys.map((key) => key.memberId) ?? []);
  const seesOthers = mine !== undefined && [...members].some((member) => member !== mine.memberId);

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    try {
      const answer = await api.keys.createKey({ name: name.trim(), memberId: memberId.trim() });
      if (answer.key) setCreated({ key: answer.key, secret: answer.apiKey });
      setName("");
      setCopied(false);
      await queryClient.invalidateQueries();
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

  const revoke = async (key: ApiKey) => {
    setProblem(undefined);
    try {
      await api.keys.revokeKey({ keyId: key.keyId });
      setConfirming(undefined);
      if (created?.key.keyId === key.keyId) setCreated(undefined);
      if (key.keyId === mine?.keyId) {
        onSignOut();
        return;
      }
      await queryClient.invalidateQueries();
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <p className="muted">
        {mine === undefined
          ? "Keys of this account."
          : mine.memberId === ""
            ? "You are signed in with an account-wide key: you manage every key of the account."
            : seesOthers
              ? `You are signed in as ${mine.memberId} (owner or admin): you manage every member's keys.`
              : `You are signed in as ${mine.memberId}: you see and manage your own keys.`}
      </p>
      <form className="create-key" onSubmit={(event) => void create(event)}>
        <label>
          Name
          <input value={name} onChange={(event) => setName(event.target.value)} maxLength={100} placeholder="e.g. production server" required />
        </label>
        <label>
          Member (owners and admins)
          <input value={memberId} onChange={(event) => setMemberId(event.target.value)} placeholder={mine?.memberId || "yourself"} aria-describedby="member-hint" />
          <span id="member-hint" className="visually-hidden">
            Optional: leave empty for a key of your own.
          </span>
        </label>
        <button type="submit" className="primary">
          Create key
        </button>
      </form>
      {problem && <ProblemView problem={problem} />}
      {created && (
        <div className="secret" role="status" aria-live="polite">
          <p>
            <strong>New key “{created.key.name}”.</strong> Copy it now: it is shown only this once and stored only as a hash.
          </p>
          <code data-testid="new-key">{created.secret}</code>
          <button
            type="button"
            onClick={() => {
              void navigator.clipboard?.writeText(created.secret).then(() => setCopied(true), () => setCopied(false));
            }}
          >
            {copied ? "Copied" : "Copy"}
          </button>
          <button type="button" className="link" onClick={() => setCreated(undefined)}>
            I have stored it
          </button>
        </div>
      )}
      {keys.error && <ProblemView problem={problemOf(keys.error)} onRetry={() => void keys.refetch()} />}
      {keys.data && (
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key</th>
                <th scope="col">Member</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.data.keys.map((key) => (
                <tr key={key.keyId} data-key-id={key.keyId}>
                  <td>
                    {key.name || <span className="muted">unnamed</span>}
                    {key.keyId === mine?.keyId && <span className="badge">this session</span>}
                  </td>
                  <td>
                    <code>{key.keyPrefix}…</code>
                  </td>
                  <td>{key.memberId || <span className="muted">account</span>}</td>
                  <td>{day(key.createdAt)}</td>
                  <td>{day(key.lastUsedAt)}</td>
                  <td>
                    {confirming === key.keyId ? (
                      <span className="confirm">
                        <button type="button" className="danger" onClick={() => void revoke(key)}>
                          Revoke {key.keyId === mine?.keyId ? "and sign out" : "now"}
                        </button>
                        <button type="button" onClick={() => setConfirming(undefined)}>
                          Keep
                        </button>
                      </span>
                    ) : (
                      <button type="button" onClick={() => setConfirming(key.keyId)} aria-label={`Revoke ${key.name || key.keyPrefix}`}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
