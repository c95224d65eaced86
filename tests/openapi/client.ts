// A client typed from the generated document, as the React UI builds one (openapi-fetch over
// openapi-typescript's `paths`). tests/e2e/openapi.rs type-checks it: it must compile.
import createClient from "openapi-fetch";
import type { paths } from "./api";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:7071" });

export async function use(): Promise<void> {
  const list = await client.GET("/api/executions", { params: { query: { limit: 5, status: "failed" } } });
  const id: string | undefined = list.data?.executions[0]?.executionId;
  const more: boolean | undefined = list.data?.hasMore;
  const logs = await client.GET("/api/executions/{id}/logs", {
    params: { path: { id: id ?? "x" }, query: { afterSequence: 3 } },
  });
  const sequence: number | undefined = logs.data?.[0]?.sequence;
  const problem: string | undefined = logs.error?.error;
  const detail = await client.GET("/api/executions/{id}", { params: { path: { id: "x" } } });
  const status: "Pending" | "Running" | "Success" | "Failed" | "Timeout" | "CompletedWithErrors" | "Cancelling" | "Cancelled" | undefined =
    detail.data?.status;
  const daily = await client.GET("/api/metrics/daily", { params: { query: { days: 30 } } });
  const total: number | undefined = daily.data?.days[0]?.totalExecutions;
  const subscribed = await client.POST("/api/history/subscribe", { body: { connectionId: "c" } });
  const group: string | undefined = subscribed.data?.group;
  const query = await client.POST("/api/executions/query", { body: { status: ["failed", "timeout"], limit: 20 } });
  console.log(more, sequence, problem, status, total, group, query.data?.continuationToken);
}
