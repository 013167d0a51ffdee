import { useEffect, useState } from "react";
import { useQuery } from "@connectrpc/connect-query";
import { useQuery as useTanstackQuery } from "@tanstack/react-query";
import { AccountService } from "../../../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { PaymentService, ProductKind, type Product } from "../../../services/common/gen/cutline/gateway/v1/payment_service_pb.ts";
import { PAYMENT_SERVICE, serves, type Api } from "../api.ts";
import { ProblemView, Unavailable } from "../components/problem.tsx";
import { isUnavailable, problemOf, type Problem } from "../errors.ts";
import { credits, day } from "../format.ts";

const KIND_LABEL: Record<string, string> = { trial: "Free trial", subscription: "Plan allowance", pack: "Credit pack", top_up: "Top-up", promo: "Promotion", refund: "Refund" };

export function BalancePage({ api }: { api: Api }) {
  const balance = useQuery(AccountService.method.getBalance, {});
  return (
    <section aria-labelledby="balance-title">
      <h1 id="balance-title">Balance</h1>
      {balance.error && <ProblemView problem={problemOf(balance.error)} onRetry={() => void balance.refetch()} />}
      {balance.data && (
        <>
          <div className="figures">
            <div className="figure">
              <span className="figure-label">Available</span>
              <span className="figure-value" data-testid="available-credits">
                {credits(balance.data.availableMillicredits)}
              </span>
              <span className="muted">credits</span>
            </div>
            <div className="figure">
              <span className="figure-label">Held by running jobs</span>
              <span className="figure-value">{credits(balance.data.heldMillicredits)}</span>
              <span className="muted">credits</span>
            </div>
          </div>
          <h2>Operations left</h2>
          <ul className="affordable">
            {balance.data.affordable.map((operation) => (
              <li key={operation.operation}>
                <strong>{operation.count.toLocaleString()}</strong> × {operation.description || operation.operation}
              </li>
            ))}
          </ul>
          <h2>Credit buckets</h2>
          <p className="muted">Credits that expire soonest are spent first.</p>
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col">Granted</th>
                  <th scope="col">Remaining</th>
                  <th scope="col">Held</th>
                  <th scope="col">Expires</th>
                </tr>
              </thead>
              <tbody>
                {balance.data.buckets.map((bucket) => (
                  <tr key={bucket.id}>
                    <td>{KIND_LABEL[bucket.kind] ?? bucket.kind}</td>
                    <td>{credits(bucket.grantedMillicredits)}</td>
                    <td>{credits(bucket.remainingMillicredits)}</td>
                    <td>{credits(bucket.heldMillicredits)}</td>
                    <td>{day(bucket.expiresAt)}</td>
                  </tr>
                ))}
                {balance.data.buckets.length === 0 && (
                  <tr>
                    <td colSpan={5}>No credits yet.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        </>
      )}
      <BuyCredits api={api} />
    </section>
  );
}

/** Plans and packs through PaymentService, where this gateway serves it and a provider is configured. */
function BuyCredits({ api }: { api: Api }) {
  // Asked first, so a server without PaymentService is told apart without a failed call.
  const served = useTanstackQuery({ queryKey: ["serves", PAYMENT_SERVICE], queryFn: () => serves(api, PAYMENT_SERVICE), staleTime: Infinity });
  const products = useQuery(PaymentService.method.listProducts, {}, { retry: false, enabled: served.data === true });
  const [problem, setProblem] = useState<Problem | undefined>();
  const [busy, setBusy] = useState<string | undefined>();
  const returned = new URLSearchParams(window.location.search).get("checkout");
  useEffect(() => {
    if (window.location.hash === "#buy") document.getElementById("buy")?.scrollIntoView();
  }, [served.data, products.data, products.error]);

  const checkout = async (product: Product) => {
    setBusy(product.code);
    setProblem(undefined);
    try {
      const back = `${window.location.origin}/balance`;
      const { url } = await api.payments.createCheckout({ productCode: product.code, successUrl: `${back}?checkout=success`, cancelUrl: `${back}?checkout=cancelled` });
      window.location.assign(url);
    } catch (error) {
      setProblem(problemOf(error));
      setBusy(undefined);
    }
  };
  const portal = async () => {
    setBusy("portal");
    try {
      const { url } = await api.payments.createPortalSession({ returnUrl: `${window.location.origin}/balance` });
      window.location.assign(url);
    } catch (error) {
      setProblem(problemOf(error));
      setBusy(undefined);
    }
  };

  return (
    <div id="buy" className="buy" tabIndex={-1}>
      <h2>Buy credits or change plan</h2>
      {returned === "success" && <p role="status">Thank you: the credits appear here as soon as the payment is confirmed.</p>}
      {returned === "cancelled" && <p role="status">The checkout was cancelled; nothing was charged.</p>}
      {served.data === false && <Unavailable feature="Buying credits" detail="Ask the operator of this server to grant credits or change your plan." />}
      {products.error && (isUnavailable(products.error) ? <Unavailable feature="Buying credits" detail="Ask the operator of this server to grant credits or change your plan." /> : <ProblemView problem={problemOf(products.error)} />)}
      {products.data && !products.data.checkoutAvailable && (
        <Unavailable feature="Online payment" detail="This server sells by hand: ask its operator for these packs and plans." />
      )}
      {problem && (problem.unavailable ? <Unavailable feature="Online payment" detail={problem.detail} /> : <ProblemView problem={problem} />)}
      {products.data && (
        <ul className="products">
          {products.data.products.map((product) => (
            <li key={product.code} className="product">
              <strong>{product.name}</strong>
              <span>
                {credits(product.creditsMillicredits)} credits{product.kind === ProductKind.PLAN ? ` every ${product.interval || "month"}` : ""}
                {product.validDays > 0 ? `, valid ${product.validDays} days` : ", never expire"}
              </span>
              <span className="price">{(Number(product.priceMinor) / 100).toLocaleString(undefined, { style: "currency", currency: product.currency || "USD" })}</span>
              {products.data.checkoutAvailable && (
                <button type="button" className="primary" disabled={busy !== undefined} onClick={() => void checkout(product)}>
                  {busy === product.code ? "Opening…" : product.kind === ProductKind.PLAN ? "Switch to this plan" : "Buy"}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {products.data?.checkoutAvailable && (
        <button type="button" disabled={busy !== undefined} onClick={() => void portal()}>
          Manage payment methods and invoices
        </button>
      )}
    </div>
  );
}
