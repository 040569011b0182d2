using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Truestock.Connectors.Erp;

/// <summary>The outcome of one Odoo JSON-RPC call.</summary>
/// <param name="Result">The call's result (null when Odoo returned none, e.g. for a method that returns nothing).</param>
/// <param name="Error">Null on success; otherwise what went wrong, with Odoo's own exception name and message.</param>
/// <param name="Transient">For errors: true when the same call may succeed later.</param>
/// <param name="ErrorName">For Odoo errors: the exception's name (<c>odoo.exceptions.AccessDenied</c>, …).</param>
internal sealed record OdooReply(JsonElement? Result, string? Error, bool Transient, string? ErrorName)
{
    public bool Succeeded => Error is null;
}

/// <summary>
/// Odoo's external JSON-RPC API: <c>POST {url}/jsonrpc</c> with
/// <c>{"jsonrpc":"2.0","method":"call","params":{"service","method","args"},"id"}</c>. Success is
/// <c>{"jsonrpc":"2.0","id","result"?}</c> (Odoo leaves <c>result</c> out when the method returned nothing); failure is
/// HTTP 200 with <c>{"error":{"code","message":"Odoo Server Error","data":{"name","message","arguments","debug"}}}</c>.
/// </summary>
internal sealed class OdooRpc(ErpSettings settings, ErpHttp http)
{
    private const string Service = "Odoo";

    /// <summary>
    /// Odoo exceptions that no retry fixes: authentication, access rights, validation and user errors, missing records,
    /// and the Python errors a wrong call raises. Anything else (a database that is restarting, a serialization failure
    /// under concurrent updates, a worker killed on a time limit) is worth retrying.
    /// </summary>
    private static readonly HashSet<string> PermanentErrors = new(StringComparer.Ordinal)
    {
        "odoo.exceptions.AccessDenied", "odoo.exceptions.AccessError", "odoo.exceptions.UserError",
        "odoo.exceptions.ValidationError", "odoo.exceptions.MissingError", "odoo.exceptions.RedirectWarning",
        "builtins.ValueError", "builtins.KeyError", "builtins.TypeError", "builtins.AttributeError",
    };

    private readonly Uri _endpoint = new(settings.Url!, settings.Url!.AbsolutePath.TrimEnd('/') + "/jsonrpc");
    private long _nextId;

    /// <summary><c>common.login(db, login, password)</c>: the user id, or null when Odoo refuses the credentials (it answers false).</summary>
    public async Task<(long? Uid, OdooReply Reply)> LoginAsync(string password, CancellationToken ct)
    {
        var reply = await CallAsync("common", "login", new JsonArray(settings.Database, settings.Login, password), repeatable: true, ct).ConfigureAwait(false);
        if (!reply.Succeeded)
        {
            return (null, reply);
        }
        return (reply.Result is { ValueKind: JsonValueKind.Number } uid && uid.TryGetInt64(out var id) && id > 0 ? id : null, reply);
    }

    /// <summary><c>object.execute_kw(db, uid, password, model, method, args, kwargs)</c>.</summary>
    public Task<OdooReply> ExecuteAsync(long uid, string password, string model, string method, JsonArray args, JsonObject? kwargs,
        bool repeatable, CancellationToken ct)
    {
        var all = new JsonArray(settings.Database, uid, password, model, method, args);
        if (kwargs is not null)
        {
            all.Add(kwargs);
        }
        return CallAsync("object", "execute_kw", all, repeatable, ct);
    }

    private async Task<OdooReply> CallAsync(string service, string method, JsonArray args, bool repeatable, CancellationToken ct)
    {
        var envelope = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["method"] = "call",
            ["params"] = new JsonObject { ["service"] = service, ["method"] = method, ["args"] = args },
            ["id"] = Interlocked.Increment(ref _nextId),
        };
        // The body holds the password: it is sent, never logged or quoted in an error.
        var body = JsonSerializer.SerializeToUtf8Bytes(envelope);
        var answer = await http.SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Post, _endpoint) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            return request;
        }, repeatable, Service, ct).ConfigureAwait(false);
        if (!answer.Succeeded)
        {
            return new OdooReply(null, answer.Describe(Service), answer.IsTransient, null);
        }
        try
        {
            using var document = JsonDocument.Parse(answer.Body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new OdooReply(null, "Odoo answered something other than a JSON-RPC object.", true, null);
            }
            if (root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
            {
                var name = error.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object
                    && data.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                var message = data.ValueKind == JsonValueKind.Object && data.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String
                    ? m.GetString()
                    : error.TryGetProperty("message", out var top) && top.ValueKind == JsonValueKind.String ? top.GetString() : null;
                var text = ErpHttp.Bound($"Odoo: {name ?? "error"}: {message ?? "no message"}");
                return new OdooReply(null, text, name is null || !PermanentErrors.Contains(name), name);
            }
            return new OdooReply(root.TryGetProperty("result", out var result) ? result.Clone() : null, null, false, null);
        }
        catch (JsonException)
        {
            // A proxy's HTML page with status 200, or a cut answer: whether the call ran is unknown, so it is retried later.
            return new OdooReply(null, ErpHttp.Bound("Odoo answered with a body that is not JSON: " + answer.Body[..Math.Min(200, answer.Body.Length)]), true, null);
        }
    }
}
