function S = read_saliency(file, varargin)
%READ_SALIENCY Read a salpipe output file (HDF5) into a struct.
%
%   S = read_saliency(FILE) reads every map of FILE.
%   S = read_saliency(FILE, 'image', I, 'target', T, 'method', M) reads one image,
%   one target and/or one method (any subset of the three); the others are read
%   whole. I, T and M are 1-based indices or names: an image as listed in S.image
%   (or its file name, with or without extension), a target as 'fc3:540', a method
%   as 'guided'. Only the selected part of /saliency is read from the file.
%
%   Fields of S (indices are 1-based, so S.saliency(i,t,m,c,y,x) is Python's
%   f['saliency'][i-1, t-1, m-1, c-1, y-1, x-1]):
%     saliency      [image, target, method, channel, y, x] signed gradients, single
%                   (double for precision = "float64"); NaN where not computed;
%                   empty when the only method is gradcam
%     gradcam       [image, target, y, x] Grad-CAM maps (only when gradcam was
%                   asked for; the 'method' selection does not apply)
%     integrated_gradients_gap  [image, target] double: each Integrated Gradients
%                   map's completeness gap (only with integrated_gradients)
%     activation    [image, target] the target unit's value for each image
%     image         cellstr [image x 1]   image paths as listed in the config
%     target        cellstr [target x 1]  'layer:unit', e.g. 'fc3:540'
%     target_layer  cellstr [target x 1]
%     target_unit   int32   [target x 1]  1-based unit numbers (DNNBrain's)
%     method        cellstr [method x 1]  'vanilla', 'guided', ... (all but gradcam)
%     status        int8    [image x 1]   1 done, 0 not done, -1 failed
%     error         cellstr [image x 1]   why an image failed, else ''
%     index         struct: the 1-based image, target and method indices read
%     attrs         struct of the root attributes (salpipe_version, config,
%                   model_sha256, mean, std, resize, created, ...)
%
%   Axis order. salpipe writes /saliency in C (row-major) order with the shape
%   [image, target, method, channel, y, x]. MATLAB is column-major, and h5read,
%   h5info and h5disp show every dataset with its axes reversed: h5read returns
%   /saliency as [x, y, channel, method, target, image], and its START and COUNT
%   arguments are given in that reversed order too. This function builds START
%   and COUNT in the reversed order, then turns the result around with
%   permute(raw, [6 5 4 3 2 1]) so that the axes read as in Python and in the
%   documentation. /activation, [image, target] in the file, likewise comes back
%   from h5read as [target, image] and is transposed.
%
%   Example:
%     S = read_saliency('out/saliency.h5', 'target', 'fc3:540', 'method', 'guided');
%     m = squeeze(S.saliency(1, 1, 1, :, :, :));     % [channel, y, x]
%     imagesc(squeeze(max(abs(m), [], 1))); axis image; colorbar
%
%   See docs/output-format.md in the salpipe repository.

p = inputParser;
addRequired(p, 'file', @(x) ischar(x) || isstring(x));
addParameter(p, 'image', []);
addParameter(p, 'target', []);
addParameter(p, 'method', []);
parse(p, file, varargin{:});
file = char(p.Results.file);

images = read_strings(file, '/image');
targets = read_strings(file, '/target');
methods = read_strings(file, '/method');
[i0, ni] = pick(p.Results.image, images, 'image', true);
[t0, nt] = pick(p.Results.target, targets, 'target', false);
[m0, nm] = pick(p.Results.method, methods, 'method', false);

% h5info gives the dataset's size in MATLAB's reversed order: [x y channel method
% target image]. The check guards against a MATLAB that would not reverse it.
% A job whose only method is gradcam has no /saliency.
S.saliency = [];
if nm > 0
    info = h5info(file, '/saliency');
    dims = info.Dataspace.Size;
    if numel(dims) ~= 6 || dims(6) ~= numel(images) || dims(5) ~= numel(targets) || ...
            dims(4) ~= numel(methods)
        dims = fliplr(dims);
    end

    % Reversed order, 1-based: whole x, y and channel axes, then the selection.
    start = [1, 1, 1, m0, t0, i0];
    count = [dims(1), dims(2), dims(3), nm, nt, ni];
    raw = h5read(file, '/saliency', start, count);
    S.saliency = permute(raw, [6 5 4 3 2 1]);
end

% /gradcam is [image, target, y, x] in the file: [x y target image] here.
if has_dataset(file, 'gradcam')
    info = h5info(file, '/gradcam');
    cdims = info.Dataspace.Size;
    if numel(cdims) ~= 4 || cdims(4) ~= numel(images) || cdims(3) ~= numel(targets)
        cdims = fliplr(cdims);
    end
    cam_start = [1, 1, t0, i0];
    cam_count = [cdims(1), cdims(2), nt, ni];
    cam = h5read(file, '/gradcam', cam_start, cam_count);
    S.gradcam = permute(cam, [4 3 2 1]);
end

act_start = [t0, i0];
act_count = [nt, ni];
act = h5read(file, '/activation', act_start, act_count);
S.activation = permute(act, [2 1]);
if has_dataset(file, 'integrated_gradients_gap')
    gap = h5read(file, '/integrated_gradients_gap', act_start, act_count);
    S.integrated_gradients_gap = permute(gap, [2 1]);
end

S.image = images(i0:i0 + ni - 1);
S.target = targets(t0:t0 + nt - 1);
S.target_layer = read_strings(file, '/target_layer', t0, nt);
S.target_unit = h5read(file, '/target_unit', t0, nt);
S.method = methods(m0:m0 + nm - 1);
S.status = h5read(file, '/status', i0, ni);
S.error = read_strings(file, '/error', i0, ni);
S.index = struct('image', i0:i0 + ni - 1, 'target', t0:t0 + nt - 1, ...
                 'method', m0:m0 + nm - 1);
S.attrs = read_attrs(file);
end


function yes = has_dataset(file, name)
% Whether the file's root group has a dataset of that name.
info = h5info(file, '/');
yes = any(strcmp({info.Datasets.Name}, name));
end


function c = read_strings(file, name, start, count)
% A 1-D variable-length string dataset as a column cellstr (h5read returns a cell
% array of char, or a string array in some releases; cellstr takes either).
if nargin < 3
    v = h5read(file, name);
else
    v = h5read(file, name, start, count);
end
c = cellstr(v);
c = c(:);
end


function [first, n] = pick(sel, names, what, by_file_name)
% The 1-based first index and the count to read: all when sel is empty, else the
% one entry sel names (an index or a name).
if isempty(sel)
    first = 1;
    n = numel(names);
    return
end
n = 1;
if isnumeric(sel)
    if ~isscalar(sel) || sel ~= round(sel) || sel < 1 || sel > numel(names)
        error('read_saliency:range', 'the %s index must be one integer in 1..%d', ...
              what, numel(names));
    end
    first = double(sel);
    return
end
sel = char(sel);
hit = find(strcmp(names, sel));
if isempty(hit) && by_file_name
    for k = 1:numel(names)
        [~, stem, ext] = fileparts(names{k});
        if strcmp([stem ext], sel) || strcmp(stem, sel)
            hit(end + 1) = k; %#ok<AGROW>
        end
    end
end
if isempty(hit)
    error('read_saliency:name', 'no %s named ''%s'' in the file', what, sel);
elseif numel(hit) > 1
    error('read_saliency:name', '%d %ss are named ''%s''; give an index', ...
          numel(hit), what, sel);
end
first = hit;
end


function attrs = read_attrs(file)
% The root group's attributes; a one-element cell (a string attribute in some
% releases) is unwrapped.
info = h5info(file, '/');
attrs = struct();
for k = 1:numel(info.Attributes)
    a = info.Attributes(k);
    v = a.Value;
    if iscell(v) && numel(v) == 1
        v = v{1};
    end
    attrs.(matlab.lang.makeValidName(a.Name)) = v;
end
end
