import { useMemo, useState, type ReactNode } from "react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { TransportProvider, useQuery } from "@connectrpc/connect-query";
import { AccountService } from "../../services/common/gen/cutline/gateway/v1/account_service_pb.ts";
import { createApi, storeApiKey, storedApiKey, type Api } from "./api.ts";
import { credits } from "./format.ts";
import { BalancePage } from "./pages/balance.page.tsx";
import { ImagesPage } from "./pages/images.page.tsx";
import { KeysPage } from "./pages/keys.page.tsx";
import { SignInPage } from "./pages/sign-in.page.tsx";
import { UsagePage } from "./pages/usage.page.tsx";
import { VideoPage } from "./pages/video.page.tsx";
import { navigate, PAGES, usePath } from "./router.ts";

export function App() {
  const [apiKey, setApiKey] = useState(storedApiKey);
  const path = usePath();
  const api = useMemo(() => (apiKey ? createApi(apiKey) : undefined), [apiKey]);
  // One cache per sign-in: nothing of one key's answers is shown to the next.
  const queryClient = useMemo(() => new QueryClient({ defaultOptions: { queries: { retry: false, refetchOnWindowFocus: true } } }), [apiKey]);

  const signOut = () => {
    storeApiKey(undefined);
    setApiKey(undefined);
    navigate("/sign-in");
  };

  if (!api || !apiKey) {
    return (
      <Shell>
        <SignInPage
          onSignedIn={(key) => {
            storeApiKey(key);
            setApiKey(key);
            if (path === "/sign-in") navigate("/");
          }}
        />
      </Shell>
    );
  }
  return (
    <TransportProvider transport={api.transport}>
      <QueryClientProvider client={queryClient}>
        <Shell nav={<Navigation path={path} onSignOut={signOut} />}>
          <Page path={path} api={api} apiKey={apiKey} onSignOut={signOut} />
        </Shell>
      </QueryClientProvider>
    </TransportProvider>
  );
}

function Page({ path, api, apiKey, onSignOut }: { path: string; api: Api; apiKey: string; onSignOut: () => void }) {
  // The upload pages stay mounted while signed in: uploads in flight and their results survive a
  // look at the balance or the keys.
  const uploadPage = path === "/video" ? "video" : ["/balance", "/usage", "/keys"].includes(path) ? undefined : "images";
  return (
    <>
      <div hidden={uploadPage !== "images"}>
        <ImagesPage api={api} />
      </div>
      <div hidden={uploadPage !== "video"}>
        <VideoPage api={api} />
      </div>
      {uploadPage === undefined && <AccountPage path={path} api={api} apiKey={apiKey} onSignOut={onSignOut} />}
    </>
  );
}

function AccountPage({ path, api, apiKey, onSignOut }: { path: string; api: Api; apiKey: string; onSignOut: () => void }) {
  switch (path) {
    case "/balance":
      return <BalancePage api={api} />;
    case "/usage":
      return <UsagePage />;
    case "/keys":
      return <KeysPage api={api} apiKey={apiKey} onSignOut={onSignOut} />;
    default:
      return <KeysPage api={api} apiKey={apiKey} onSignOut={onSignOut} />;
  }
}

function Shell({ nav, children }: { nav?: ReactNode; children: ReactNode }) {
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top">
        <a
          className="brand"
          href="/"
          onClick={(event) => {
            event.preventDefault();
            navigate("/");
          }}
        >
          <img src="/favicon.svg" alt="" width={24} height={24} /> Cutline
        </a>
        {nav}
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

function Navigation({ path, onSignOut }: { path: string; onSignOut: () => void }) {
  const balance = useQuery(AccountService.method.getBalance, {});
  return (
    <nav aria-label="Pages">
      <ul>
        {PAGES.map((page) => (
          <li key={page.path}>
            <a
              href={page.path}
              aria-current={path === page.path || (page.path === "/" && path === "/sign-in") ? "page" : undefined}
              onClick={(event) => {
                event.preventDefault();
                navigate(page.path);
              }}
            >
              {page.label}
            </a>
          </li>
        ))}
      </ul>
      <span className="balance-badge" data-testid="balance-badge" aria-live="polite">
        {balance.data ? `${credits(balance.data.availableMillicredits)} credits` : "…"}
      </span>
      <button type="button" className="link" onClick={onSignOut}>
        Sign out
      </button>
    </nav>
  );
}
