// The UI's only data source: the GraphQL API at /graphql.
//   const data = await gql(`query { models { name } }`);
// Errors (HTTP, network, GraphQL `errors`) are thrown as ApiError with a readable message.

export class ApiError extends Error {}

export const ENDPOINT = "/graphql";

export async function gql(query, variables = {}) {
  let res;
  try {
    res = await fetch(ENDPOINT, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ query, variables }),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the API at ${ENDPOINT} (${err.message})`);
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    throw new ApiError(`the API answered ${res.status} ${res.statusText} without JSON`);
  }
  if (body.errors && body.errors.length) {
    throw new ApiError(body.errors.map((e) => e.message).join("; "));
  }
  if (!res.ok) throw new ApiError(`the API answered ${res.status} ${res.statusText}`);
  return body.data;
}
