using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Truestock.Core;

namespace Truestock.Server.Http;

/// <summary>
/// Reads and validates a JSON request body field by field. Wrong JSON types are "malformed"
/// (400); missing fields and values out of range are "invalid" (422). All errors of a request
/// are collected so the caller sees every problem at once.
/// </summary>
internal sealed partial class JsonInput
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);
    private bool _malformed;

    public bool HasErrors => _errors.Count > 0;

    public void Malformed(string field, string message)
    {
        _malformed = true;
        Add(field, message);
    }

    public void Invalid(string field, string message) => Add(field, message);

    private void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var list))
        {
            // Bound the error report of a huge bad request.
            if (_errors.Count >= 100)
            {
                return;
            }
            _errors[field] = list = [];
        }
        list.Add(message);
    }

    /// <summary>The 400 or 422 answer for the collected errors, or null when there are none.</summary>
    public IResult? Result()
    {
        if (!HasErrors)
        {
            return null;
        }
        var errors = _errors.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        var first = _errors.First();
        var detail = $"{first.Key}: {first.Value[0]}" + (_errors.Count > 1 ? $" (and {_errors.Count - 1} more field(s))" : "");
        return _malformed ? Problems.Malformed(detail, errors) : Problems.Invalid(detail, errors);
    }

    /// <summary>The collected errors as one line (for dead letters), or null when there are none.</summary>
    public string? Describe() => HasErrors
        ? string.Join("; ", _errors.Select(kv => $"{kv.Key}: {string.Join(" ", kv.Value)}"))
        : null;

    /// <summary>Reads the body as one JSON object, within the size limit.</summary>
    public static async Task<(JsonDocument? Document, IResult? Error)> ReadObject(HttpRequest request, long limitBytes)
    {
        if (request.ContentLength > limitBytes)
        {
            return (null, Problems.TooLarge(limitBytes));
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > limitBytes)
            {
                return (null, Problems.TooLarge(limitBytes));
            }
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0)
        {
            return (null, Problems.Malformed("The request body is empty; a JSON object is expected."));
        }
        if (!System.Text.Unicode.Utf8.IsValid(buffer.GetBuffer().AsSpan(0, (int)buffer.Length)))
        {
            return (null, Problems.Malformed("The body is not valid UTF-8."));
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException ex)
        {
            return (null, Problems.Malformed($"The body is not valid JSON: {ex.Message}"));
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            return (null, Problems.Malformed("The body must be a JSON object."));
        }
        return (document, null);
    }

    private static bool Present(JsonElement obj, string name, out JsonElement value) =>
        obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public string? String(JsonElement obj, string name, string path, bool required, int maxLength = Limits.TextLengthMax)
    {
        if (!Present(obj, name, out var v))
        {
            if (required)
            {
                Invalid(path, "is required.");
            }
            return null;
        }
        if (v.ValueKind != JsonValueKind.String)
        {
            Malformed(path, $"must be a string, not {Kind(v)}.");
            return null;
        }
        var s = v.GetString()!;
        if (s.Length == 0 || s.Length > maxLength)
        {
            Invalid(path, $"must be 1–{maxLength} characters long.");
            return null;
        }
        if (s.Any(char.IsControl))
        {
            Invalid(path, "must not contain control characters.");
            return null;
        }
        return s;
    }

    public string? Id(JsonElement obj, string name, string path, bool required)
    {
        var s = String(obj, name, path, required, Limits.IdLengthMax);
        if (s is not null && !IsId(s))
        {
            Invalid(path, "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
            return null;
        }
        return s;
    }

    public string? Sku(JsonElement obj, string name, string path) => String(obj, name, path, required: true, Limits.SkuLengthMax);

    public long? Long(JsonElement obj, string name, string path, bool required, long min, long max)
    {
        if (!Present(obj, name, out var v))
        {
            if (required)
            {
                Invalid(path, "is required.");
            }
            return null;
        }
        if (v.ValueKind != JsonValueKind.Number)
        {
            Malformed(path, $"must be a number, not {Kind(v)}.");
            return null;
        }
        if (!v.TryGetInt64(out var n))
        {
            Invalid(path, $"must be a whole number between {min} and {max}.");
            return null;
        }
        if (n < min || n > max)
        {
            Invalid(path, $"must be between {min} and {max}; got {n}.");
            return null;
        }
        return n;
    }

    public DateTimeOffset? Timestamp(JsonElement obj, string name, string path, bool required)
    {
        var s = String(obj, name, path, required, 64);
        if (s is null)
        {
            return null;
        }
        if (!Rfc3339().IsMatch(s) || !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t))
        {
            Invalid(path, "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-23T10:15:00Z or 2026-11-23T11:15:00+01:00.");
            return null;
        }
        return t;
    }

    public JsonElement? Array(JsonElement obj, string name, string path, bool required, int minCount, int maxCount)
    {
        if (!Present(obj, name, out var v))
        {
            if (required)
            {
                Invalid(path, "is required.");
            }
            return null;
        }
        if (v.ValueKind != JsonValueKind.Array)
        {
            Malformed(path, $"must be an array, not {Kind(v)}.");
            return null;
        }
        var count = v.GetArrayLength();
        if (count < minCount || count > maxCount)
        {
            Invalid(path, $"must hold {minCount}–{maxCount} items; got {count}.");
            return null;
        }
        return v;
    }

    public bool IsObject(JsonElement item, string path)
    {
        if (item.ValueKind == JsonValueKind.Object)
        {
            return true;
        }
        Malformed(path, $"must be an object, not {Kind(item)}.");
        return false;
    }

    /// <summary>Parses cursor paging parameters (?after=&amp;limit=).</summary>
    public (long AfterId, int PageSize) Page(string? after, string? limit, int pageSizeDefault, int pageSizeMax)
    {
        long afterId = 0;
        var pageSize = pageSizeDefault;
        if (after is not null && (!long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out afterId) || afterId < 0))
        {
            Invalid("after", "must be a cursor returned as 'next' by a previous page.");
        }
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out pageSize) || pageSize < 1 || pageSize > pageSizeMax))
        {
            Invalid("limit", $"must be a whole number from 1 to {pageSizeMax}.");
        }
        return (afterId, pageSize);
    }

    public static bool IsId(string s)
    {
        if (s.Length is 0 or > Limits.IdLengthMax)
        {
            return false;
        }
        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '-'))
            {
                return false;
            }
        }
        return true;
    }

    public static bool IsSku(string s) => s.Length is > 0 and <= Limits.SkuLengthMax && !s.Any(char.IsControl);

    private static string Kind(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$", RegexOptions.CultureInvariant)]
    private static partial Regex Rfc3339();
}
