package transform

import (
	"strings"

	"github.com/tidwall/gjson"
)

// What the provider translators share of reading an OpenAI chat request.

// chatRequest holds the top-level fields of an OpenAI chat request that the
// translations read (each reads the ones its provider has).
type chatRequest struct {
	messages, tools, toolChoice, parallel, stop       gjson.Result
	maxCompletion, maxTokens, temperature, topP, topK gjson.Result
	n, logprobs, responseFormat, user                 gjson.Result
	presence, frequency, seed                         gjson.Result
}

// readChatRequest finds those fields in a valid JSON object (ParseRequest
// checked it) in one pass.
func readChatRequest(body []byte) chatRequest {
	var c chatRequest
	gjson.Parse(unsafeString(body)).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "messages":
			c.messages = v
		case "tools":
			c.tools = v
		case "tool_choice":
			c.toolChoice = v
		case "parallel_tool_calls":
			c.parallel = v
		case "stop":
			c.stop = v
		case "max_completion_tokens":
			c.maxCompletion = v
		case "max_tokens":
			c.maxTokens = v
		case "temperature":
			c.temperature = v
		case "top_p":
			c.topP = v
		case "top_k":
			c.topK = v
		case "n":
			c.n = v
		case "logprobs":
			c.logprobs = v
		case "response_format":
			c.responseFormat = v
		case "user":
			c.user = v
		case "presence_penalty":
			c.presence = v
		case "frequency_penalty":
			c.frequency = v
		case "seed":
			c.seed = v
		}
		return true
	})
	return c
}

// toolCallInput checks an assistant tool call's id, name and arguments and
// returns the arguments as a JSON object ("{}" when empty).
func toolCallInput(id, name, args gjson.Result, i, j int) (string, *Error) {
	switch {
	case id.Type != gjson.String || id.Str == "":
		return "", fieldError("missing_required_parameter", "must be a non-empty string", "messages[%d].tool_calls[%d].id", i, j)
	case name.Type != gjson.String || name.Str == "":
		return "", fieldError("missing_required_parameter", "must be a non-empty string", "messages[%d].tool_calls[%d].function.name", i, j)
	case args.Exists() && args.Type != gjson.String && args.Type != gjson.Null:
		return "", fieldError("invalid_type", "must be a string of JSON", "messages[%d].tool_calls[%d].function.arguments", i, j)
	}
	input := strings.TrimSpace(args.Str)
	if input == "" {
		input = "{}"
	}
	if !gjson.Valid(input) || input[0] != '{' {
		return "", fieldError("invalid_value", "must be a JSON object", "messages[%d].tool_calls[%d].function.arguments", i, j)
	}
	return input, nil
}

// userParts is how a provider writes an OpenAI user message's parts: text
// parts open with textOpen and close with '}', image_url parts go to
// image; backend names the provider in the error for other part types.
type userParts struct {
	textOpen string
	image    func(out []byte, img gjson.Result, i, j int) ([]byte, *Error)
	backend  string
}

// appendUserParts writes user message i's content array (text and
// image_url parts) as a JSON array of the provider's blocks; a string or
// empty content is the caller's, every other shape an error naming the
// field.
func appendUserParts(out []byte, content gjson.Result, i int, p userParts) ([]byte, *Error) {
	if !content.IsArray() {
		return nil, fieldError("invalid_type", "must be a string or an array of parts", "messages[%d].content", i)
	}
	if emptyContainer(content.Raw) {
		return nil, fieldError("invalid_value", "must not be empty", "messages[%d].content", i)
	}
	out = append(out, '[')
	var e *Error
	j := -1
	content.ForEach(func(_, part gjson.Result) bool {
		j++
		if j > 0 {
			out = append(out, ',')
		}
		switch part.Get("type").Str {
		case "text":
			text := rawMember(part, "text")
			if text.Type != gjson.String {
				e = fieldError("invalid_type", "must be a string", "messages[%d].content[%d].text", i, j)
				return false
			}
			out = append(append(append(out, p.textOpen...), text.Raw...), '}')
		case "image_url":
			out, e = p.image(out, part.Get("image_url"), i, j)
		default:
			e = fieldError("unsupported_value", "only text and image_url parts are available with "+p.backend, "messages[%d].content[%d].type", i, j)
		}
		return e == nil
	})
	if e != nil {
		return nil, e
	}
	return append(out, ']'), nil
}

// imageURLField is the field an image part's errors name.
const imageURLField = "messages[%d].content[%d].image_url"

// imageURL reads an image_url part's URL: the object's url, or the string
// itself.
func imageURL(img gjson.Result, i, j int) (string, *Error) {
	u := img
	if img.IsObject() {
		u = img.Get("url")
	}
	if u.Type != gjson.String {
		return "", fieldError("invalid_type", "url must be a string", imageURLField, i, j)
	}
	return u.Str, nil
}

// maxOutputTokens returns the request's bound on generated tokens:
// max_completion_tokens, else max_tokens (ok false when neither is set),
// its raw JSON number, or an error naming the field when it is not a
// positive integer.
func (c *chatRequest) maxOutputTokens() (raw string, ok bool, e *Error) {
	name, v := "max_completion_tokens", c.maxCompletion
	if !v.Exists() || v.Type == gjson.Null {
		name, v = "max_tokens", c.maxTokens
	}
	if !v.Exists() || v.Type == gjson.Null {
		return "", false, nil
	}
	if v.Type != gjson.Number || !positiveInteger(v.Raw) {
		return "", false, badRequest("invalid_value", name, "%s must be a positive integer", name)
	}
	return v.Raw, true, nil
}
