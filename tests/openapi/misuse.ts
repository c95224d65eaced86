// Wrong uses the generated types must refuse (tests/e2e/openapi.rs expects tsc to fail here,
// once per marked line), so the types are real and not `any`.
import createClient from "openapi-fetch";
import type { paths } from "./api";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:7071" });

export async function misuse(): Promise<void> {
  const logs = await client.GET("/api/executions/{id}/logs", { params: { path: { id: "x" } } });
  const sequence: string | undefined = logs.data?.[0]?.sequence; // MISUSE: sequence is a number
  await client.GET("/api/executions/{id}", {}); // MISUSE: the path parameter is required
  await client.POST("/api/history/subscribe", { body: { connection: "c" } }); // MISUSE: connectionId
  await client.GET("/api/no-such-route"); // MISUSE: not a route
  console.log(sequence);
}
