// Parses and semantically analyses KQL with Kusto.Language, Microsoft's own parser and
// binder (the C# library compiled to JavaScript, npm @kusto/language-service-next), over
// the columns of Application Insights' `requests` and `traces` tables, so a misspelt
// column, a wrong type or a syntax error is reported as Kusto would report it.
//
//   node check_kql.js <path to @kusto/language-service-next>  < queries.json
//   queries.json: [{"name": "...", "text": "..."}]
//   stdout: [{"name": ..., "diagnostics": [{"severity", "code", "start", "message"}]}]
//   exit 0 when no query has an error-severity diagnostic, 1 otherwise, 2 on misuse.
"use strict";
const fs = require("fs");
const path = require("path");

const dir = process.argv[2];
if (!dir || !fs.existsSync(path.join(dir, "Kusto.Language.Bridge.min.js"))) {
  console.error("usage: node check_kql.js <dir of @kusto/language-service-next>");
  process.exit(2);
}
require(path.join(dir, "bridge.min.js"));
require(path.join(dir, "Kusto.Language.Bridge.min.js"));
const K = global.Kusto.Language;
const S = K.Symbols;

// Application Insights (classic) columns shared by every table, then per table.
const common =
  "timestamp:datetime, itemType:string, customDimensions:dynamic, customMeasurements:dynamic, " +
  "operation_Name:string, operation_Id:string, operation_ParentId:string, operation_SyntheticSource:string, " +
  "session_Id:string, user_Id:string, user_AuthenticatedId:string, user_AccountId:string, " +
  "application_Version:string, client_Type:string, client_Model:string, client_OS:string, client_IP:string, " +
  "client_City:string, client_StateOrProvince:string, client_CountryOrRegion:string, client_Browser:string, " +
  "cloud_RoleName:string, cloud_RoleInstance:string, appId:string, appName:string, iKey:string, " +
  "sdkVersion:string, itemId:string, itemCount:int";
const tables = {
  requests: "id:string, source:string, name:string, url:string, success:bool, resultCode:string, duration:real, performanceBucket:string, " + common,
  traces: "message:string, severityLevel:int, " + common,
  exceptions: "problemId:string, handledAt:string, type:string, message:string, assembly:string, method:string, outerType:string, outerMessage:string, outerAssembly:string, outerMethod:string, innermostType:string, innermostMessage:string, innermostAssembly:string, innermostMethod:string, severityLevel:int, details:dynamic, " + common,
};
const symbols = Object.entries(tables).map(([name, cols]) => new S.TableSymbol.$ctor7(name, `(${cols})`, null));
const globals = K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.ctor("ApplicationInsights", symbols));

const queries = JSON.parse(fs.readFileSync(0, "utf8"));
let failed = false;
const out = queries.map(({ name, text }) => {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = [];
  const en = code.GetDiagnostics().GetEnumerator();
  while (en.moveNext()) {
    const d = en.Current;
    diagnostics.push({ severity: String(d.Severity), code: String(d.Code), start: d.Start, message: String(d.Message) });
    if (String(d.Severity) === "Error") failed = true;
  }
  // The columns of the result (name:type), so a caller can check what the query returns.
  let columns = null;
  const rt = code.ResultType;
  if (rt && rt.Columns) {
    columns = [];
    const cols = rt.Columns.GetEnumerator();
    while (cols.moveNext()) columns.push(`${cols.Current.Name}:${cols.Current.Type.Name}`);
  }
  return { name, diagnostics, columns };
});
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
process.exit(failed ? 1 : 0);
